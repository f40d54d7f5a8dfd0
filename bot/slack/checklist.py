"""Manual checklist buttons (confirm_manual_step). Filled in by the Intercom work."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.deps import Deps
from bot.slack.context import SlackContext


def register(app: AsyncApp, deps: Deps, slack: SlackContext) -> None:
    return None
