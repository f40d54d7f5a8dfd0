"""Slack wiring: `create_app` builds Bolt's AsyncApp and registers every listener explicitly.

Each feature module has `register(app, deps, slack)`; nothing registers itself at import time.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.deps import Deps
from bot.slack import approvals, checklist, commands, reminders
from bot.slack.context import SlackContext

FEATURES = (commands, approvals, reminders, checklist)


def create_app(deps: Deps, *, client: AsyncWebClient | None = None) -> tuple[AsyncApp, SlackContext]:
    settings = deps.settings
    if settings.slack_bot_token is None or settings.slack_signing_secret is None:
        raise ValueError("SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are needed to run the Slack bot")
    token = settings.slack_bot_token.get_secret_value()
    client = client or AsyncWebClient(token=token, base_url=settings.slack_api_url)
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        process_before_response=False,
    )
    slack = SlackContext(deps=deps, client=client)
    for feature in FEATURES:
        feature.register(app, deps, slack)
    return app, slack
