"""Reminder buttons (restore_now, snooze_reminder, ack_reminder). Filled in by the reminders work."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.deps import Deps
from bot.slack.context import SlackContext


def register(app: AsyncApp, deps: Deps, slack: SlackContext) -> None:
    return None
