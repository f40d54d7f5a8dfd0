"""Plain-text and JSON rendering of command replies for the CLI (pure functions)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any

from sqlmodel import SQLModel

from bot.engine import Outcome
from bot.planning import PlannedChange
from commands.base import Reply


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([line.rstrip(), "  ".join("-" * w for w in widths), *body])


def render(reply: Reply) -> str:
    renderer = RENDERERS.get(reply.kind)
    return renderer(reply) if renderer else reply.text


def _plan(reply: Reply) -> str:
    changes: list[PlannedChange] = reply.data
    rows = [(c.kind, c.automation_id, c.name, c.action, c.status, c.note or "") for c in changes]
    parts = [table(("kind", "id", "name", "action", "status", "note"), rows)] if rows else ["(no changes)"]
    created = reply.extra.get("created_during_pause") or []
    if created:
        parts.append("Created during the pause and enabled (left as they are):")
        parts.extend(f"  {item['kind']} {item['id']} {item['name']}" for item in created)
    parts.append(reply.text)
    return "\n".join(parts)


def _outcome(reply: Reply) -> str:
    outcome = reply.data
    rows = [(c.kind, c.automation_id, c.name, c.action, c.status, c.note or "") for c in outcome.changes]
    parts = [table(("kind", "id", "name", "action", "status", "note"), rows)] if rows else ["(no changes)"]
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.counts.items())) or "nothing to do"
    parts.append(f"{reply.text} ({counts})")
    manual = [c for c in outcome.changes if c.action == "manual" and c.status == "planned"]
    if manual:
        parts.append("By hand, then `migration-guard confirm STEP` (the bot checks each one):")
        parts.extend(f"  step {c.id}: {c.name}  {c.url or ''}" for c in manual)
    if outcome.request.reason:
        parts.append(f"Reason: {outcome.request.reason}")
    parts.extend(f"Differs from the snapshot: {line}" for line in outcome.differences)
    return "\n".join(parts)


def _snapshot(reply: Reply) -> str:
    _, automations = reply.data
    rows = [(a.kind, a.id, a.name, {True: "on", False: "off", None: "-"}[a.enabled]) for a in automations]
    return "\n".join([table(("kind", "id", "name", "enabled"), rows), reply.text])


def _status(reply: Reply) -> str:
    view = reply.data
    guard = view.guard
    lines = [
        f"Platform:  {view.platform}",
        f"Guard:     {guard.state} since {guard.since:%Y-%m-%d %H:%M} UTC"
        + (f" (by {guard.changed_by})" if guard.changed_by else ""),
    ]
    if view.pause is not None:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(view.pause_counts.items())) or "no changes"
        lines.append(f"Pause:     {view.pause.id} ({view.pause.status}; {counts})")
    for request in view.open_requests:
        lines.append(f"Open:      {request.kind} {request.id} {request.status}, asked by {request.requester}")
    for run in view.active_runs:
        lines.append(f"Import:    {run.name} ({run.id}) running since {run.created_at:%Y-%m-%d %H:%M} UTC")
    if view.next_reminder is not None:
        lines.append(
            f"Reminder:  {view.next_reminder.kind} at {view.next_reminder.due_at:%Y-%m-%d %H:%M} UTC"
        )
    return "\n".join(lines)


def _history(reply: Reply) -> str:
    rows = [
        (f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.request_id or "", _brief(e.detail))
        for e in reply.data
    ]
    return table(("at (UTC)", "actor", "action", "request", "detail"), rows) if rows else "(no events yet)"


def _help(reply: Reply) -> str:
    return "\n".join(f"  {usage:<70} {text}" for usage, text in reply.data)


def _brief(detail: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items() if not isinstance(v, (list, dict)))[:80]


RENDERERS = {
    "plan": _plan,
    "outcome": _outcome,
    "snapshot": _snapshot,
    "status": _status,
    "history": _history,
    "help": _help,
}


def to_json(reply: Reply) -> str:
    return json.dumps(
        {"text": reply.text, "kind": reply.kind, "data": _plain(reply.data), **_plain(reply.extra)}, indent=2
    )


def _plain(value: Any) -> Any:
    if isinstance(value, SQLModel):
        return _plain(value.model_dump())
    if is_dataclass(value) and not isinstance(value, type):
        plain = {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, Outcome):
            plain["counts"] = value.counts
        return plain
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
