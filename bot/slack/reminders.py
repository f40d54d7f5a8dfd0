"""Reminders in Slack: `deliver` posts what the reminder clock finds due, and the buttons on the
message (restore_now, snooze_reminder, ack_reminder) answer it. Authorisation happens on every click:
Restore now follows the usual restore rules (the approval card decides); snooze and acknowledge are
for on-call and approvers only, and nobody when neither is configured."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot import checklist, engine, ids, reminders
from bot.blocks.approval import closed_card
from bot.blocks.checklist import checklist_reminder
from bot.blocks.common import mention, slack_date
from bot.blocks.reminders import (
    answered,
    approval_nudge,
    expired_notice,
    parse_snooze_value,
    planned_end_reminder,
    restore_reminder,
)
from bot.deps import Deps
from bot.errors import GuardError, UsageError
from bot.models import Reminder
from bot.reminders import ReminderKind, ReminderView
from bot.settings import format_duration
from bot.slack.approvals import card_context, open_request
from bot.slack.context import Respond, SlackContext

log = logging.getLogger(__name__)

METADATA_EVENT = "migration_guard_reminder"


def register(app: AsyncApp, deps: Deps, slack: SlackContext) -> None:
    slack.on_action(app, ids.RESTORE_NOW, restore_now)
    slack.on_action(app, ids.SNOOZE_REMINDER, snooze)
    slack.on_action(app, ids.ACK_REMINDER, acknowledge)


# ---- delivery --------------------------------------------------------------------------------


def deliverer(slack: SlackContext) -> reminders.Deliver:
    """`deliver` bound to a SlackContext, as bot.reminders.tick and start_scheduler take it."""

    async def bound(reminder: Reminder) -> reminders.Delivered:
        return await deliver(slack, reminder)

    return bound


async def deliver(slack: SlackContext, reminder: Reminder) -> reminders.Delivered:
    """Post (or, for an expiry, close the card); returns (channel, ts) for the row to record."""
    view = await reminders.reminder_view(slack.deps, reminder)
    if reminder.kind == ReminderKind.APPROVAL_EXPIRY:
        return await _expire(slack, view)
    where = card_context(slack)
    thread_ts = None
    channel = reminder.slack_channel or slack.channel
    if reminder.kind == ReminderKind.APPROVAL_NUDGE:
        text, blocks = approval_nudge(view, where)
        if view.request is not None and view.request.slack_channel and view.request.slack_ts:
            channel, thread_ts = view.request.slack_channel, view.request.slack_ts
    elif reminder.kind == ReminderKind.PLANNED_END:
        text, blocks = planned_end_reminder(view, where)
    elif reminder.kind == ReminderKind.CHECKLIST and reminder.request_id:
        listing = await checklist.load(slack.deps, reminder.request_id)
        text, blocks = checklist_reminder(listing, notify=slack.deps.settings.guard_oncall)
        posted = reminder.payload.get("checklist") or {}
        channel, thread_ts = posted.get("channel") or channel, posted.get("thread_ts")
    else:
        text, blocks = restore_reminder(view, where)
    if not channel:
        raise GuardError("GUARD_CHANNEL is not set: reminders have nowhere to go")
    answer = await slack.client.chat_postMessage(
        channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, metadata=_metadata(reminder)
    )
    return answer["channel"], answer["ts"]


def _metadata(reminder: Reminder) -> dict[str, Any]:
    """Names the reminder on the message itself, so a post can always be traced to its row."""
    return {
        "event_type": METADATA_EVENT,
        "event_payload": {
            "reminder_id": reminder.id,
            "kind": reminder.kind,
            "target": reminder.target,
            "attempt": reminder.attempts,
        },
    }


async def _expire(slack: SlackContext, view: ReminderView) -> tuple[str, str]:
    """The request expired: its card says so and loses its buttons."""
    request = view.request
    if request is None:
        raise GuardError(f"reminder {view.reminder.id} names no request")
    if request.slack_channel and request.slack_ts:
        text, blocks = closed_card(request, card_context(slack))
        await slack.update(channel=request.slack_channel, ts=request.slack_ts, text=text, blocks=blocks)
        return request.slack_channel, request.slack_ts
    text, blocks = expired_notice(request)
    return await slack.post(text=text, blocks=blocks, channel=view.reminder.slack_channel)


# ---- buttons ---------------------------------------------------------------------------------


def _value(body: dict[str, Any]) -> str:
    action = body["actions"][0]
    value = action.get("value") or (action.get("selected_option") or {}).get("value")
    if not value:
        raise UsageError("the button carried no reminder")
    return str(value)


def _reminder_id(text: str) -> int:
    try:
        return parse_snooze_value(text)[0]
    except ValueError:
        raise UsageError(f"{text!r} names no reminder") from None


async def restore_now(slack: SlackContext, body: dict[str, Any], respond: Respond) -> None:
    """Opens a restore request exactly as `/migration restore` does; the approval card decides."""
    user = body["user"]["id"]
    reminder = await reminders.get_reminder(slack.deps, _reminder_id(_value(body)))
    outcome = await engine.request_restore(slack.deps, actor=user)
    await reminders.note_restore_requested(
        slack.deps, reminder.id or 0, by=user, request_id=outcome.request.id
    )
    await _mark(
        slack,
        body,
        f":leftwards_arrow_with_hook: {mention(user)} asked for a restore: `{outcome.request.id}`.",
    )
    await open_request(slack, outcome, respond)


async def snooze(slack: SlackContext, body: dict[str, Any], respond: Respond) -> None:
    user = body["user"]["id"]
    await reminders.authorize_answer(slack.deps.settings, user, is_member=slack.is_member)
    try:
        reminder_id, duration = parse_snooze_value(_value(body))
    except ValueError:
        raise UsageError("the snooze button carried no reminder") from None
    until = await reminders.snooze(
        slack.deps, reminder_id, by=user, duration=reminders.snooze_duration(duration)
    )
    await _mark(slack, body, f":zzz: Snoozed by {mention(user)} until {slack_date(until)}.")


async def acknowledge(slack: SlackContext, body: dict[str, Any], respond: Respond) -> None:
    user = body["user"]["id"]
    await reminders.authorize_answer(slack.deps.settings, user, is_member=slack.is_member)
    await reminders.acknowledge(slack.deps, _reminder_id(_value(body)), by=user)
    every = format_duration(slack.deps.settings.guard_remind_every)
    await _mark(
        slack,
        body,
        f":construction: {mention(user)}: still importing. "
        f"Reminders go on every {every}; escalation starts over.",
    )


async def _mark(slack: SlackContext, body: dict[str, Any], note: str) -> None:
    """Replace the clicked message's buttons with who answered; the answer stands if this fails."""
    message = body.get("message")
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    if not message or not channel or not message.get("ts"):
        return
    try:
        await slack.update(
            channel=channel,
            ts=message["ts"],
            text=message.get("text") or note,
            blocks=answered(message.get("blocks") or [], note),
        )
    except SlackApiError as error:
        log.warning("could not update reminder message %s: %s", message["ts"], error.response.get("error"))
