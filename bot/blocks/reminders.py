"""Reminder messages: restore nudges while paused, the planned end of `--for`, approval nudges.

Pure functions of a `bot.reminders.ReminderView`; times use Slack's date formatting so each reader
sees their own time zone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot import ids
from bot.blocks.approval import CardContext
from bot.blocks.common import (
    SANDBOX_NOTE,
    Block,
    actions,
    button,
    context,
    escape,
    fields,
    header,
    line_sections,
    mention,
    section,
    slack_date,
)
from bot.models import ChangeRequest
from bot.reminders import ReminderView, RunView
from bot.settings import format_duration

BLOCK_ACTIONS = "reminder_actions"
BLOCK_SNOOZE = "reminder_snooze"
SNOOZE_CHOICES = ("1h", "2h", "4h", "8h")
RUNS_SHOWN = 5
OFF_WORDS = {
    "disable": "switched off",
    "exempt": "skipping imported records",
    "manual": "off by hand",
    "enable": "switched on",
    "unexempt": "no longer skipping imported records",
}


def human_duration(delta: timedelta | None) -> str:
    """`2d 3h`, `3h 20m`, `15m`, `less than a minute`."""
    if delta is None:
        return "an unknown time"
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes and not days else "",
    ]
    return " ".join(p for p in parts if p)


def mentions(view: ReminderView) -> str:
    return " ".join(mention(who) for who in view.mentions)


def snooze_value(reminder_id: int | None, duration: str = "2h") -> str:
    return f"{reminder_id}:{duration}"


def parse_snooze_value(value: str) -> tuple[int, str | None]:
    """`12:2h` -> (12, "2h"); `12` -> (12, None: the default)."""
    reminder, _, duration = value.partition(":")
    return int(reminder), duration or None


def reminder_actions(reminder_id: int | None) -> list[Block]:
    """[Restore now] [Snooze 2h] [Still importing], and a menu to snooze for another time."""
    value = str(reminder_id)
    choose = {
        "type": "static_select",
        "action_id": ids.SNOOZE_REMINDER,
        "placeholder": {"type": "plain_text", "text": "Snooze for…"},
        "options": [
            {"text": {"type": "plain_text", "text": f"Snooze {d}"}, "value": snooze_value(reminder_id, d)}
            for d in SNOOZE_CHOICES
        ],
    }
    return [
        actions(
            BLOCK_ACTIONS,
            button(
                "Restore now",
                ids.RESTORE_NOW,
                value,
                style="primary",
                confirm=(
                    "Restore the automations?",
                    "This opens a restore request; it follows the usual approval rules.",
                    "Request restore",
                ),
            ),
            button("Snooze 2h", ids.SNOOZE_REMINDER, snooze_value(reminder_id)),
            button("Still importing", ids.ACK_REMINDER, value),
        ),
        actions(BLOCK_SNOOZE, choose),
    ]


def _facts(view: ReminderView) -> Block:
    pause = view.pause
    pairs = [
        ("Paused by", mention(pause.requester if pause else None)),
        ("Approved by", mention(pause.decided_by if pause else None)),
        ("What is off", off_line(view.off)),
    ]
    if pause is not None:
        pairs.append(("Pause request", f"`{pause.id}`"))
        if pause.planned_end_at is not None:
            pairs.append(("Planned end", slack_date(pause.planned_end_at)))
    return fields(pairs)


def off_line(off: dict[str, int]) -> str:
    if not off:
        return "nothing recorded"
    return " · ".join(f"*{n}* {OFF_WORDS.get(action, action)}" for action, n in sorted(off.items()))


def run_line(item: RunView) -> str:
    run = item.run
    name = f"*{escape(run.name)}*"
    batch = item.last_batch
    if batch is None:
        return f"• {name}: no batch reported yet (started {slack_date(run.created_at)})"
    of = f"/{run.total_batches}" if run.total_batches else ""
    return (
        f"• {name}: last batch {batch.batch}{of} {slack_date(batch.reported_at)}, "
        f"{batch.ok} ok, {batch.failed} failed · "
        f"so far {item.ok} ok, {item.failed} failed in {item.batches} batches"
    )


def _runs(view: ReminderView) -> list[Block]:
    if not view.runs:
        return [section(":zzz: No import is running. If the import is done, restore now.")]
    lines = [":inbox_tray: *Imports running*", *(run_line(r) for r in view.runs[:RUNS_SHOWN])]
    if len(view.runs) > RUNS_SHOWN:
        lines.append(f"…and {len(view.runs) - RUNS_SHOWN} more")
    return line_sections(lines)


def _tail(view: ReminderView) -> list[Block]:
    notes = []
    if view.open_restore is not None:
        notes.append(
            f":hourglass_flowing_sand: Restore `{view.open_restore.id}` is {view.open_restore.status} "
            f"(asked by {mention(view.open_restore.requester)})."
        )
    notes.append("Snooze and Still importing: on-call and approvers. Restore now opens a restore request.")
    return [*reminder_actions(view.reminder.id), *(context(n) for n in notes)]


def _sandbox(blocks: list[Block], where: CardContext) -> list[Block]:
    return [blocks[0], context(SANDBOX_NOTE), *blocks[1:]] if where.sandbox else blocks


def restore_reminder(view: ReminderView, where: CardContext) -> tuple[str, list[Block]]:
    """Every GUARD_REMIND_EVERY while paused; approvers are mentioned too once it escalates."""
    since = view.guard.since if view.guard else view.now
    long = human_duration(view.paused_for)
    who = mentions(view)
    lead = (
        f"{who} automations on *{escape(where.platform)}* have been paused for *{long}* "
        f"(since {slack_date(since)})."
    )
    if view.escalated:
        lead += f"\n:rotating_light: {view.unanswered} reminders went unanswered, so the approvers hear too."
    blocks = [
        header(f":alarm_clock: Automations still paused on {where.platform}"),
        section(lead),
        _facts(view),
    ]
    blocks += _runs(view) + _tail(view)
    text = f"{who} automations on {where.platform} have been paused for {long}: restore them once imported."
    return text.strip(), _sandbox(blocks, where)


def planned_end_reminder(view: ReminderView, where: CardContext) -> tuple[str, list[Block]]:
    """`pause --for 8h` has run out."""
    pause = view.pause
    end = pause.planned_end_at if pause and pause.planned_end_at else view.now
    planned = format_duration(end - pause.created_at) if pause else "a planned time"
    who = mentions(view)
    lead = (
        f"{who} the pause on *{escape(where.platform)}* was planned for *{planned}* "
        f"and ended {slack_date(end)}. Is the import done? Restore now, or snooze if it needs longer."
    )
    blocks = [header(f":checkered_flag: Planned pause over on {where.platform}"), section(lead), _facts(view)]
    blocks += _runs(view) + _tail(view)
    text = f"{who} the planned pause ({planned}) on {where.platform} is over: restore the automations?"
    return text.strip(), _sandbox(blocks, where)


def approval_nudge(view: ReminderView, where: CardContext) -> tuple[str, list[Block]]:
    """A request still waiting for a decision."""
    request = view.request
    assert request is not None
    who = mentions(view) or "Approvers:"
    waiting = human_duration(view.now - request.created_at)
    expires = f" It expires {slack_date(request.expires_at)}." if request.expires_at else ""
    lead = (
        f"{who} the {request.kind} request `{request.id}` by {mention(request.requester)} "
        f"has been waiting *{waiting}* for a decision.{expires}"
    )
    text = f"{who} {request.kind} request {request.id} has been waiting {waiting} for approval."
    return text, [section(lead)]


def expired_notice(request: ChangeRequest) -> tuple[str, list[Block]]:
    """For a request whose card is unknown (the card itself becomes closed_card otherwise)."""
    text = (
        f"{request.kind.capitalize()} request {request.id} expired: nobody decided in time. "
        "Nothing was changed."
    )
    return text, [section(f":hourglass: {text}")]


def answered(blocks: list[dict[str, Any]], note: str) -> list[dict[str, Any]]:
    """The clicked reminder without its buttons, saying who answered and how."""
    kept = [b for b in blocks if b.get("block_id") not in (BLOCK_ACTIONS, BLOCK_SNOOZE)]
    return [*kept, context(note)]
