"""Intercom's manual guard in Slack (pure builders): the checklist and its notices, the notes on the
approval card, and leak alerts. Limits: 50 blocks a message, so long checklists come in pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from adapters.intercom import PLAN_RESTRICTED
from bot import ids
from bot.blocks.approval import progress_bar
from bot.blocks.common import (
    Block,
    button,
    clip,
    context,
    escape,
    header,
    line_sections,
    mention,
    section,
    slack_date,
)
from bot.checklist import MISMATCH, UNVERIFIABLE, VERIFIED, Checklist, StepResult
from bot.models import Change, ImportRun, LeakAlert

PAGE_ROWS = 40  # rows a message holds next to its header, intro, progress and footer
NAME_CHARS = 80
LEAKS_SHOWN = 15

INTERCOM_NOTES: tuple[str, ...] = (
    ":bell: *Intercom notifications during the import:* `skip_notifications: true` exists only on "
    "tickets (`POST /tickets`, `PUT /tickets/{id}`, `POST /tickets/{id}/reply`; API 2.13+) and on admin "
    "replies (`POST /conversations/{id}/reply`; API 2.15+). Creating a conversation (`POST /conversations`) "
    "has no such switch: it can notify people and start workflows, so pause them first or import as tickets.",
    ":clipboard: Intercom's API cannot pause workflows: once approved, a checklist opens in this thread. "
    "People pause each workflow in Intercom; the bot exports it again to check before ticking it.",
)

WORDS = {
    # kind: (verb for people, past participle, button label, state asked for)
    "pause": ("pause", "paused", "Paused it"),
    "restore": ("set live", "live again", "Set it live"),
}


def _words(kind: str) -> tuple[str, str, str]:
    return WORDS["pause" if kind == "pause" else "restore"]


def unreadable(step: Change) -> bool:
    """Planned while the plan refused export: the bot never knew this workflow's state."""
    return step.before.get("export") == PLAN_RESTRICTED or step.after.get("state") is None


def _link(step: Change, checklist: Checklist) -> str:
    title = escape(clip(checklist.title(step), NAME_CHARS))
    shown = f"<{step.url}|{title}>" if step.url and step.url.startswith("http") else f"*{title}*"
    return f"{shown} `{step.automation_id}`"


def step_text(step: Change, checklist: Checklist) -> str:
    """One row: what to do, or what happened."""
    verb, done, label = _words(checklist.request.kind)
    head = _link(step, checklist)
    by = f"{mention(step.confirmed_by)}" + (f" {slack_date(step.confirmed_at)}" if step.confirmed_at else "")
    if step.status == "done" and step.verification == UNVERIFIABLE:
        return (
            f":ballot_box_with_check: {head}\n{done.capitalize()} on the word of {by}: "
            "Intercom's plan refuses export, so the bot cannot verify it"
        )
    if step.status == "done":
        return f":white_check_mark: {head}\n{done.capitalize()}, verified in Intercom · ticked by {by}"
    if step.status == "skipped":
        return f":fast_forward: {head}\n{escape(step.note or 'skipped')}"
    if step.verification == MISMATCH:
        return (
            f":warning: {head}\n*{escape(step.note or 'Intercom disagrees')}* ({by}). Still open: "
            f"{verb} it in Intercom, then press *{label}* again."
        )
    if unreadable(step):
        return (
            f":lock: {head}\nIntercom's plan hides its state: {verb} it in Intercom if needed, then press "
            f"*{label}*. Your press is the only record."
        )
    was = "Live at the snapshot" if checklist.request.kind == "pause" else "Live before the pause"
    return f":white_circle: {head}\n{was}: {verb} it in Intercom, then press *{label}*."


def step_block(step: Change, checklist: Checklist) -> Block:
    block = section(step_text(step, checklist))
    block["block_id"] = f"step_{step.id}"
    if step.status == "planned":
        label = _words(checklist.request.kind)[2]
        style = "primary" if step.verification != MISMATCH else "danger"
        block["accessory"] = button(label, ids.CONFIRM_MANUAL_STEP, str(step.id), style=style)
    return block


def _title(checklist: Checklist) -> str:
    what = (
        "pause Intercom workflows"
        if checklist.request.kind == "pause"
        else "set Intercom workflows live again"
    )
    return f"Checklist: {what} · {checklist.request.id}"


def _intro(checklist: Checklist) -> str:
    request = checklist.request
    label = _words(request.kind)[2]
    lead = f"{mention(request.requester)}: approved by {mention(request.decided_by)}. "
    if request.kind == "pause":
        return lead + (
            "Intercom's API cannot pause workflows, so people do: open each workflow below in Intercom, "
            f"*pause* it, then press *{label}*. The bot exports it again and checks Intercom's state "
            "before ticking it."
        )
    return lead + (
        f"Set each workflow *live* again in Intercom, then press *{label}*. Listed are exactly the "
        "workflows the pause checklist took down (those live at the snapshot); the bot exports each one "
        "again to check before ticking it."
    )


def progress_line(checklist: Checklist) -> str:
    flagged = sum(1 for s in checklist.steps if s.status == "planned" and s.verification == MISMATCH)
    bar = progress_bar(checklist.done, checklist.total)
    line = f"*{checklist.done}/{checklist.total}* done `{bar}`"
    if flagged:
        line += f" · :warning: {flagged} flagged"
    if checklist.open:
        line += (
            f"\nThe guard stays *{checklist.guard}* until every row is ticked; reminders continue until then."
        )
    else:
        line += f"\n:white_check_mark: All done: the guard is *{checklist.guard}*."
    return line


def checklist_pages(checklist: Checklist) -> list[tuple[str, list[Block]]]:
    """The checklist as one message per PAGE_ROWS rows; the first page carries intro and progress."""
    rows = [checklist.steps[i : i + PAGE_ROWS] for i in range(0, max(len(checklist.steps), 1), PAGE_ROWS)]
    text = f"{_title(checklist)}: {checklist.done}/{checklist.total} done"
    pages = []
    for index, chunk in enumerate(rows):
        blocks: list[Block] = []
        if index == 0:
            blocks += [header(_title(checklist)), section(_intro(checklist))]
            blocks.append(section(progress_line(checklist)))
        else:
            blocks.append(context(f"{_title(checklist)} · page {index + 1}/{len(rows)}"))
        blocks += [step_block(step, checklist) for step in chunk]
        if index == 0 and len(rows) > 1:
            blocks.append(context(f"Page 1/{len(rows)}: the rest follows in this thread."))
        pages.append((text if index == 0 else f"{text} (page {index + 1}/{len(rows)})", blocks))
    return pages


def page_of(checklist: Checklist, change_id: int) -> int:
    for position, step in enumerate(checklist.steps):
        if step.id == change_id:
            return position // PAGE_ROWS
    return 0


def mismatch_notice(result: StepResult, actor: str, title: str) -> tuple[str, list[Block]]:
    """Said in the thread when a tick does not match what Intercom reports."""
    verb, _, label = _words(result.request.kind)
    marked = "paused" if result.request.kind == "pause" else "live"
    name = escape(clip(title, NAME_CHARS))
    link = f"<{result.change.url}|open it in Intercom>" if result.change.url else "open it in Intercom"
    text = f"{name}: marked {marked}, Intercom says {result.seen}"
    line = (
        f":warning: {mention(actor)} marked *{name}* {marked}, Intercom says *{result.seen}*. "
        f"It stays open: {link}, {verb} it, then press *{label}* again."
    )
    return text, [section(line)]


def finished_notice(checklist: Checklist) -> tuple[str, list[Block]]:
    _, done, _ = _words(checklist.request.kind)
    counts = {VERIFIED: 0, UNVERIFIABLE: 0, "skipped": 0}
    for step in checklist.steps:
        key = "skipped" if step.status == "skipped" else (step.verification or VERIFIED)
        counts[key] = counts.get(key, 0) + 1
    parts = [f"{counts[VERIFIED]} verified in Intercom"]
    if counts[UNVERIFIABLE]:
        parts.append(f"{counts[UNVERIFIABLE]} on a person's word (not verifiable)")
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} deleted in Intercom")
    text = (
        f"Checklist of {checklist.request.id} complete: every workflow is {done}. "
        f"The guard is {checklist.guard}."
    )
    return text, [section(f":white_check_mark: {text}\n{' · '.join(parts)}")]


def checklist_reminder(checklist: Checklist, notify: Sequence[str] = ()) -> tuple[str, list[Block]]:
    """For the reminder clock (Reminder kind `checklist`, read fresh with `bot.checklist.load`):
    who is waited for, what is still open, and that the checklist is in the card's thread."""
    verb, _, _ = _words(checklist.request.kind)
    people = [checklist.request.requester, *(p for p in notify if p != checklist.request.requester)]
    who = " ".join(mention(person) for person in people)
    still = [step for step in checklist.steps if step.status not in ("done", "skipped")]
    text = (
        f"{who} {len(still)} of {checklist.total} Intercom workflow(s) still to {verb} by hand for "
        f"{checklist.request.kind} {checklist.request.id}; the guard stays {checklist.guard} until then."
    )
    lines = [f":alarm_clock: {text}", *(f"• {_link(step, checklist)}" for step in still[:20])]
    if len(still) > 20:
        lines.append(f"…and {len(still) - 20} more")
    blocks = [*line_sections(lines), context("Tick each one in the checklist in the approval card's thread.")]
    return text, blocks


# ---- leak alerts ------------------------------------------------------------------------------

PART_WORDS = {
    "operator_workflow_event": "ran on",
    "conversation_attribute_updated_by_workflow": "changed an attribute of",
}


def leak_alert(
    run: ImportRun,
    alerts: Sequence[LeakAlert],
    *,
    conversation_links: Mapping[str, str],
    workflow_links: Mapping[str, str],
    notify: Sequence[str] = (),
) -> tuple[str, list[Block]]:
    """Workflows seen acting on imported conversations: which workflow, which conversation, links."""
    who = " ".join(mention(person) for person in notify)
    names = sorted({alert.workflow or "an unnamed workflow" for alert in alerts})
    text = (
        f"Workflow leak in import {run.name}: {', '.join(names)[:200]} acted on "
        f"{len({a.record_id for a in alerts})} imported conversation(s)"
    )
    lines = [f":rotating_light: {who} *Workflow leak* in import *{escape(run.name)}*".replace("  ", " ")]
    for alert in alerts[:LEAKS_SHOWN]:
        workflow = escape(clip(alert.workflow or "an unnamed workflow", NAME_CHARS))
        if alert.workflow and alert.workflow.casefold() in workflow_links:
            workflow = f"<{workflow_links[alert.workflow.casefold()]}|{workflow}>"
        conversation = f"conversation {escape(alert.record_id)}"
        url = conversation_links.get(alert.record_id)
        shown = f"<{url}|{conversation}>" if url else conversation
        what = PART_WORDS.get(alert.part_type, f"left a {alert.part_type} part on")
        lines.append(f"• Workflow *{workflow}* {what} imported {shown} (part `{escape(alert.part_id)}`)")
    if len(alerts) > LEAKS_SHOWN:
        lines.append(f"…and {len(alerts) - LEAKS_SHOWN} more")
    blocks = line_sections(lines)
    blocks.append(
        context(
            "Pause that workflow in Intercom now (customers may have been notified) and track it if it is "
            "not on the list: `/migration track <workflow link>`. Conversations are sampled per batch; "
            "each workflow part is reported once."
        )
    )
    return text, blocks
