"""Drive the real bot end to end: signed requests into POST /slack/events of the real Starlette
app, Slack calls observed at the fake Slack (served over a socket, since AsyncWebClient needs one)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from slack_sdk.web.async_client import AsyncWebClient

from bot.api import routes as api_routes
from bot.deps import Deps
from bot.http import create_http_app
from bot.settings import Settings
from bot.slack import create_app
from bot.slack.context import SlackContext
from tests.conftest import make_deps
from tests.fakes.slack import DEFAULT_BOT_TOKEN, FakeSlack, serve_in_thread
from tests.slack_signing import block_actions_body, signed_headers, slash_command_body

CHANNEL = "C0MIGRATION"
REQUESTER = "U0REQUESTER"
MANAGER = "U0MANAGER1"  # in the approvers' user group
OUTSIDER = "U0OUTSIDER"
ONCALL = "U0ONCALL1"
APPROVER_GROUP = "S0APPROVERS"
SECRET = "test-signing-secret"


SLACK_SETTINGS: dict[str, Any] = {
    "slack_bot_token": DEFAULT_BOT_TOKEN,
    "slack_signing_secret": SECRET,
    "guard_channel": CHANNEL,
    "guard_approvers": APPROVER_GROUP,
    "guard_oncall": ONCALL,
}
"""Pass to tests.conftest.make_settings / zendesk_settings: `make_settings(url, **SLACK_SETTINGS)`."""


@contextmanager
def fake_slack(**kwargs: Any) -> Iterator[FakeSlack]:
    fake = FakeSlack(usergroups={APPROVER_GROUP: [MANAGER]}, **kwargs)
    with serve_in_thread(fake):
        yield fake


@dataclass
class Bot:
    deps: Deps
    slack: SlackContext
    fake: FakeSlack
    http: httpx.AsyncClient

    async def command(self, text: str, *, user: str = REQUESTER, wait: bool = True) -> httpx.Response:
        body = slash_command_body(
            text=text,
            user_id=user,
            channel_id=CHANNEL,
            response_url=self.fake.response_url(channel=CHANNEL, user_id=user),
        )
        response = await self.http.post("/slack/events", content=body, headers=signed_headers(SECRET, body))
        if wait:
            await self.slack.drain()
        return response

    async def click(
        self, action_id: str, value: str, *, user: str, message_ts: str | None = None, wait: bool = True
    ) -> httpx.Response:
        message = self.fake.message(CHANNEL, message_ts) if message_ts else None
        body = block_actions_body(
            action_id,
            value,
            user_id=user,
            channel_id=CHANNEL,
            message_ts=message_ts,
            message=message,
            response_url=self.fake.response_url(channel=CHANNEL, message_ts=message_ts, user_id=user),
        )
        response = await self.http.post("/slack/events", content=body, headers=signed_headers(SECRET, body))
        if wait:
            await self.slack.drain()
        return response

    def bot_messages(self) -> list[dict[str, Any]]:
        return [m for m in self.fake.messages(CHANNEL) if m.get("bot_id")]

    def said_to(self, user: str) -> list[str]:
        """Everything the bot told one person privately (response_url posts and ephemerals)."""
        texts = [p.get("text") or "" for p in self.fake.response_url_posts if p.get("user_id") == user]
        texts += [e.get("text") or "" for e in self.fake.ephemerals if e.get("user") == user]
        return texts


@asynccontextmanager
async def running_bot(
    settings: Settings, fake: FakeSlack, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[Bot]:
    deps = await make_deps(settings, transport)
    client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=fake.api_url)
    app, slack = create_app(deps, client=client)
    http_app = create_http_app(deps, app, api_routes(deps, slack))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=http_app), base_url="http://bot.test"
    ) as http:
        try:
            yield Bot(deps=deps, slack=slack, fake=fake, http=http)
        finally:
            await slack.aclose()
            await deps.aclose()


def elapsed(start: float) -> float:
    return time.perf_counter() - start
