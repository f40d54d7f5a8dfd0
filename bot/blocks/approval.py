"""The approval card and what it becomes: applying, outcome, stale, rejected, expired."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot import ids
from bot.blocks.common import (
    SANDBOX_NOTE,
    Block,
    actions,
    button,
    clip,
    context,
    divider,
    escape,
    fields,
    fit,
    header,
    line_sections,
    mention,
    section,
    slack_date,
)
from bot.models import Change, ChangeRequest

LIST_LIMIT = 40
LIST_CHARS = 5000
NAME_CHARS = 80
ACTION_WORDS = {
    "disable": "switch off",
    "enable": "switch on",
    "exempt": "skip imported records",
    "unexempt": "stop skipping imported records",
    "manual": "by hand (checklist)",
}
STATUS_ICONS = {
    "planned": ":white_circle:",
    "in_flight": ":hourglass_flowing_sand:",
    "done": ":white_check_mark:",
    "failed": ":x:",
    "skipped": ":fast_forward:",
    "conflict": ":warning:",
}


@dataclass(frozen=True)
class CardContext:
    """What a card says about where it applies."""

    platform: str
    sandbox: bool = False
    notes: tuple[str, ...] = ()  # platform advice shown on the approval card


def _title(request: ChangeRequest) -> str:
    verb = "Pause" if request.kind == "pause" else "Restore"
    return f"{verb} automations · {request.id}"


def _facts(request: ChangeRequest, where: CardContext) -> Block:
    pairs = [("Platform", where.platform), ("Requested by", mention(request.requester))]
    if request.mode:
        pairs.append(("Mode", request.mode))
    pairs.append(("Snapshot", f"`{request.snapshot_id}`"))
    if request.planned_end_at:
        pairs.append(("Planned end", slack_date(request.planned_end_at)))
    if request.expires_at and request.status == "pending":
        pairs.append(("Expires", slack_date(request.expires_at)))
    return fields(pairs)


def counts_line(changes: Sequence[Change], key: str = "action") -> str:
    counts: dict[str, int] = {}
    for change in changes:
        value = getattr(change, key)
        counts[value] = counts.get(value, 0) + 1
    if not counts:
        return "nothing to change"
    return " · ".join(
        f"*{n}* {ACTION_WORDS.get(v, v) if key == 'action' else v}" for v, n in sorted(counts.items())
    )


def change_line(change: Change, *, with_status: bool = False) -> str:
    icon = STATUS_ICONS.get(change.status, "") + " " if with_status else "• "
    name = escape(clip(change.name, NAME_CHARS))
    link = f"<{change.url}|{name}>" if change.url and change.url.startswith("http") else f"*{name}*"
    note = f" — _{escape(clip(change.note, 160))}_" if change.note else ""
    return f"{icon}{change.kind} {link}: {ACTION_WORDS.get(change.action, change.action)}{note}"


def change_list(
    changes: Sequence[Change], *, with_status: bool = False, budget: int = LIST_CHARS
) -> list[Block]:
    """At most LIST_LIMIT lines and about `budget` characters: Slack refuses very large messages
    as a whole, well under its per-block limits."""
    shown: list[str] = []
    for change in changes[:LIST_LIMIT]:
        line = change_line(change, with_status=with_status)
        if sum(map(len, shown)) + len(line) > budget:
            break
        shown.append(line)
    blocks = line_sections(shown)
    if len(changes) > len(shown):
        blocks.append(context(f"…and {len(changes) - len(shown)} more: the full list is in the thread."))
    return blocks


def approval_card(
    request: ChangeRequest, changes: Sequence[Change], where: CardContext
) -> tuple[str, list[Block]]:
    """Posted in the migration channel when a pause or restore is requested."""
    planned = [c for c in changes if c.status == "planned"]
    held = [c for c in changes if c.status != "planned"]
    blocks: list[Block] = [header(_title(request))]
    if where.sandbox:
        blocks.append(context(SANDBOX_NOTE))
    blocks += [_facts(request, where), section(f"*Will change:* {counts_line(planned)}")]
    blocks += change_list(planned)
    if held:
        blocks.append(section(f"*Left alone:* {counts_line(held, 'status')}"))
        blocks += change_list(held, with_status=True)[:6]
    blocks += [context(note) for note in where.notes]
    verb = "pause" if request.kind == "pause" else "restore"
    tail = [
        divider(),
        actions(
            ids.BLOCK_DECISION,
            button(
                "Approve",
                ids.APPROVE_REQUEST,
                request.id,
                style="primary",
                confirm=(
                    f"Approve this {verb}?",
                    f"{len(planned)} automation(s) will change on {where.platform}.",
                    "Approve",
                ),
            ),
            button(
                "Reject",
                ids.REJECT_REQUEST,
                request.id,
                style="danger",
                confirm=("Reject this request?", "Nothing will be changed.", "Reject"),
            ),
        ),
        context(f"Approvers decide; the requester cannot approve their own {verb}."),
    ]
    text = f"{_title(request)}: {len(planned)} change(s) waiting for approval"
    return text, fit(blocks, tail)


def applying_card(
    request: ChangeRequest, done: int, total: int, where: CardContext
) -> tuple[str, list[Block]]:
    """Shown while the apply runs; the buttons are gone so nobody clicks twice."""
    bar = progress_bar(done, total)
    blocks = [
        header(_title(request)),
        _facts(request, where),
        section(
            f":hourglass_flowing_sand: Applying, approved by {mention(request.decided_by)}\n"
            f"`{bar}` {done}/{total}"
        ),
    ]
    if where.sandbox:
        blocks.insert(1, context(SANDBOX_NOTE))
    return f"{_title(request)}: applying {done}/{total}", blocks


def outcome_card(
    request: ChangeRequest, changes: Sequence[Change], where: CardContext, differences: Sequence[str] = ()
) -> tuple[str, list[Block]]:
    """The final word: who approved, when, counts, failures (with a retry button), differences."""
    icon = {"applied": ":white_check_mark:", "partially_applied": ":warning:", "failed": ":x:"}.get(
        request.status, ":information_source:"
    )
    decided = f"approved by {mention(request.decided_by)}"
    if request.decided_at:
        decided += f" {slack_date(request.decided_at)}"
    blocks: list[Block] = [header(_title(request))]
    if where.sandbox:
        blocks.append(context(SANDBOX_NOTE))
    blocks += [
        _facts(request, where),
        section(f"{icon} *{request.status.replace('_', ' ')}*, {decided}\n{counts_line(changes, 'status')}"),
    ]
    trouble = [c for c in changes if c.status in ("failed", "conflict", "skipped", "planned")]
    if trouble:
        blocks += change_list(trouble, with_status=True)
    if differences:
        blocks += line_sections(
            [
                ":mag: *Differs from the snapshot after restore:*",
                *(f"• {escape(d)}" for d in differences[:20]),
            ]
        )
    created = (request.options or {}).get("created_during_pause") or []
    if created:
        lines = [":new: *Created during the pause and enabled* (left as they are):"]
        lines += [f"• {item['kind']} *{escape(item['name'])}*" for item in created[:20]]
        blocks += line_sections(lines)
    tail: list[Block] = []
    if any(c.status == "failed" for c in changes):
        tail = [
            actions(
                ids.BLOCK_DECISION,
                button("Retry failed changes", ids.RETRY_REQUEST, request.id, style="primary"),
            )
        ]
    return f"{_title(request)}: {request.status}", fit(blocks, tail)


def closed_card(request: ChangeRequest, where: CardContext) -> tuple[str, list[Block]]:
    """Rejected, expired or stale: say so, and offer a fresh plan where that helps."""
    words = {
        "rejected": f":no_entry_sign: Rejected by {mention(request.decided_by)}",
        "expired": ":hourglass: Expired: nobody decided in time. Nothing was changed.",
        "stale": ":arrows_counterclockwise: Not applied: the automations changed after the snapshot.",
    }
    message = words.get(request.status, request.status)
    if request.reason:
        message += f"\n_{escape(request.reason)}_"
    blocks: list[Block] = [header(_title(request)), _facts(request, where), section(message)]
    if request.status == "stale":
        blocks.append(
            actions(ids.BLOCK_DECISION, button("Plan again", ids.REPLAN_REQUEST, request.id, style="primary"))
        )
    return f"{_title(request)}: {request.status}", blocks


def progress_bar(done: int, total: int, width: int = 20) -> str:
    filled = width if total == 0 else round(width * done / total)
    return "█" * filled + "░" * (width - filled)


def plan_file(request: ChangeRequest, changes: Sequence[Change]) -> str:
    """The full list, for plans too long for the card."""
    rows = ["kind\tid\tname\taction\tstatus\tnote"]
    rows += [
        f"{c.kind}\t{c.automation_id}\t{c.name}\t{c.action}\t{c.status}\t{c.note or ''}" for c in changes
    ]
    return "\n".join(rows) + "\n"
