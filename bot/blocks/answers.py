"""Ephemeral answers to `/migration status|history|help|snapshot` (pure builders)."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.base import Automation
from bot.blocks.approval import CardContext
from bot.blocks.common import (
    SANDBOX_NOTE,
    Block,
    context,
    escape,
    fields,
    header,
    line_sections,
    mention,
    section,
    slack_date,
)
from bot.models import Snapshot
from commands.base import Reply

STATE_ICONS = {
    "live": ":large_green_circle:",
    "pausing": ":hourglass:",
    "paused": ":double_vertical_bar:",
    "restoring": ":hourglass:",
}


def _with_sandbox(blocks: list[Block], where: CardContext) -> list[Block]:
    return [*blocks, context(SANDBOX_NOTE)] if where.sandbox else blocks


def text_blocks(text: str, where: CardContext) -> list[Block]:
    return _with_sandbox([section(escape(text))], where)


def status_answer(reply: Reply, where: CardContext) -> tuple[str, list[Block]]:
    view = reply.data
    guard = view.guard
    icon = STATE_ICONS.get(guard.state, "")
    by = f" by {mention(guard.changed_by)}" if guard.changed_by else ""
    blocks: list[Block] = [
        header(f"{where.platform}: {guard.state}"),
        section(f"{icon} *{guard.state}* since {slack_date(guard.since)}{by}"),
    ]
    if view.pause is not None:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(view.pause_counts.items())) or "no changes"
        blocks.append(
            fields(
                [
                    ("Pause", f"`{view.pause.id}` ({view.pause.status})"),
                    ("Changes", counts),
                    ("Approved by", mention(view.pause.decided_by)),
                ]
            )
        )
    lines = [f"• {r.kind} `{r.id}` *{r.status}*, asked by {mention(r.requester)}" for r in view.open_requests]
    lines += [
        f"• import *{escape(run.name)}* (`{run.id}`) running since {slack_date(run.created_at)}"
        for run in view.active_runs
    ]
    if lines:
        blocks += line_sections(lines)
    if view.next_reminder is not None:
        blocks.append(
            context(
                f":alarm_clock: Next reminder ({view.next_reminder.kind}) "
                f"{slack_date(view.next_reminder.due_at)}"
            )
        )
    return f"{where.platform}: {guard.state}", _with_sandbox(blocks, where)


def history_answer(reply: Reply, where: CardContext) -> tuple[str, list[Block]]:
    lines = [
        f"{slack_date(event.at, '{date_short} {time}')} {mention(event.actor)} *{event.action}*"
        + (f" `{event.request_id}`" if event.request_id else "")
        for event in reply.data
    ]
    blocks = [
        header("Recent activity"),
        *(line_sections(lines) if lines else [section("Nothing has happened yet.")]),
    ]
    return reply.text, _with_sandbox(blocks[:49], where)


def help_answer(reply: Reply, where: CardContext) -> tuple[str, list[Block]]:
    lines = [f"`/migration {usage}`\n{text}" for usage, text in reply.data]
    return reply.text, _with_sandbox([header("migration-guard"), *line_sections(lines)], where)


def snapshot_answer(
    snapshot: Snapshot, automations: Sequence[Automation], where: CardContext
) -> tuple[str, list[Block]]:
    kinds: dict[str, list[int]] = {}
    for automation in automations:
        on_off = kinds.setdefault(automation.kind, [0, 0])
        on_off[0 if automation.enabled is not False else 1] += 1
    rows = [(kind, f"{on} on, {off} off") for kind, (on, off) in sorted(kinds.items())]
    text = f"Snapshot {snapshot.id}: {len(automations)} automation(s) of {where.platform}"
    blocks = [
        section(f":camera_with_flash: *{text}*"),
        fields(rows or [("Automations", "none")]),
        context("The full JSON is in the migration channel."),
    ]
    return text, _with_sandbox(blocks, where)


BUILDERS = {"status": status_answer, "history": history_answer, "help": help_answer}
