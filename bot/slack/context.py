"""What the Slack listeners share: the Web API client, background work after the ack, the
user-group cache, and the one place where errors become messages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.base import PlatformError
from bot.deps import Deps
from bot.errors import GuardError, UsageError, error_id

log = logging.getLogger(__name__)

Respond = Callable[..., Awaitable[Any]]
Handler = Callable[["SlackContext", dict[str, Any], Respond], Coroutine[Any, Any, Any]]
GROUP_CACHE_SECONDS = 300


@dataclass
class SlackContext:
    deps: Deps
    client: AsyncWebClient
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _groups: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)
    _http: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        if not any(isinstance(h, AsyncRateLimitErrorRetryHandler) for h in self.client.retry_handlers):
            self.client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=5))

    @property
    def channel(self) -> str | None:
        return self.deps.settings.guard_channel

    def on_action(self, app: AsyncApp, action_id: str, handler: Handler) -> None:
        """Register a button: ack at once, run `handler(slack, body, respond)` after the ack, and
        render its errors in the one place (run_safely)."""

        async def listener(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            respond = self.responder(body.get("response_url"))
            self.spawn(self.run_safely(handler(self, body, respond), respond), name=action_id)

        app.action(action_id)(listener)

    def responder(self, response_url: str | None) -> Respond:
        """Answer through a `response_url` on one shared HTTP session (Bolt's own `respond` opens a
        new session, and a new connection, for every message)."""

        async def respond(**message: Any) -> Any:
            if not response_url:
                raise GuardError("this interaction has no response_url to answer on")
            client = AsyncWebhookClient(response_url, session=self._session())
            return await client.send_dict({k: v for k, v in message.items() if v is not None})

        return respond

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._http

    async def aclose(self) -> None:
        await self.drain(timeout=10)
        if self._http is not None:
            await self._http.close()

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run work after the ack; keep a reference so it is neither collected nor forgotten."""
        task = asyncio.create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for background work (tests and graceful shutdown)."""
        deadline = time.monotonic() + timeout
        while self.tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self.tasks), timeout=max(0.0, deadline - time.monotonic()))

    async def group_members(self, group_id: str) -> frozenset[str]:
        """Members of a user group, cached for a few minutes (usergroups.users.list is Tier 2)."""
        cached = self._groups.get(group_id)
        if cached and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        answer = await self.client.usergroups_users_list(usergroup=group_id)
        members = frozenset(answer.get("users") or [])
        self._groups[group_id] = (time.monotonic(), members)
        return members

    async def is_member(self, user_id: str, ids: list[str]) -> bool:
        """Is the user one of `ids`, directly (U…) or through a user group (S…)?"""
        if user_id in ids:
            return True
        for group in (i for i in ids if i.startswith("S")):
            try:
                if user_id in await self.group_members(group):
                    return True
            except SlackApiError as error:
                log.warning("could not read user group %s: %s", group, error.response.get("error"))
        return False

    async def post(
        self,
        *,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None = None,
        channel: str | None = None,
    ) -> tuple[str, str]:
        answer = await self.client.chat_postMessage(
            channel=channel or self._require_channel(), text=text, blocks=blocks, thread_ts=thread_ts
        )
        return answer["channel"], answer["ts"]

    async def update(self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    async def ephemeral(self, *, channel: str, user: str, text: str) -> None:
        await self.client.chat_postEphemeral(channel=channel, user=user, text=text)

    def _require_channel(self) -> str:
        if not self.channel:
            raise GuardError("GUARD_CHANNEL is not set: tell the bot which channel is the migration channel")
        return self.channel

    async def run_safely(self, work: Awaitable[Any], respond: Respond) -> None:
        """The one error handler: typed errors become an ephemeral message saying why; anything
        else gets a short id the person can quote, and the traceback goes to the log."""
        try:
            await work
        except UsageError as error:
            await _say(respond, f":warning: {error}\nTry `/migration help`.")
        except GuardError as error:
            await _say(respond, f":no_entry: {error}")
        except PlatformError as error:
            await _say(respond, f":x: {self.deps.platform.display_name} refused: {error}")
        except Exception:
            ident = error_id()
            log.exception("unexpected error %s", ident)
            message = f":boom: Something went wrong (error id `{ident}`). Check `/migration status` first."
            await _say(respond, message)


async def _say(respond: Respond, text: str) -> None:
    try:
        await respond(text=text, response_type="ephemeral", replace_original=False)
    except Exception:  # the person may have gone; the log still has it
        log.warning("could not deliver an error message: %s", text)
