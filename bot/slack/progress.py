"""Import progress in the migration channel: the Publisher that bot.progress's coalescer calls.

One message per run (posted once, then `chat.update`d), notices in its thread. The client's
AsyncRateLimitErrorRetryHandler already waits out 429s; when it gives up, the 429 becomes
PublishDeferred so the coalescer waits Retry-After before it tries again with the latest state."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError

from bot.blocks.progress import notice_message, run_message
from bot.progress import Notice, PublishDeferred, RunView
from bot.slack.context import SlackContext

T = TypeVar("T")
DEFAULT_RETRY_AFTER = 1.0


class SlackPublisher:
    def __init__(self, slack: SlackContext):
        self.slack = slack

    async def post_run(self, view: RunView) -> tuple[str, str]:
        text, blocks = run_message(view, sandbox=self.slack.deps.is_sandbox)
        return await _deferring(self.slack.post(text=text, blocks=blocks))

    async def update_run(self, channel: str, ts: str, view: RunView) -> None:
        text, blocks = run_message(view, sandbox=self.slack.deps.is_sandbox)
        await _deferring(self.slack.update(channel=channel, ts=ts, text=text, blocks=blocks))

    async def post_notice(self, channel: str, ts: str, notice: Notice, view: RunView) -> None:
        """Notices go in the run's thread; the unguarded warning is also broadcast to the channel."""
        deps = self.slack.deps
        text, blocks = notice_message(
            notice, view, oncall=deps.settings.guard_oncall, platform=deps.platform.display_name
        )
        await _deferring(
            self.slack.client.chat_postMessage(
                channel=channel,
                thread_ts=ts,
                text=text,
                blocks=blocks,
                reply_broadcast=notice.kind == "unguarded",
            )
        )


async def _deferring(call: Awaitable[T]) -> T:
    try:
        return await call
    except SlackApiError as error:
        if error.response.status_code == 429:
            raise PublishDeferred(_retry_after(error.response.headers), "Slack answered 429") from error
        raise


def _retry_after(headers: Any) -> float:
    value = (headers.get("Retry-After") or headers.get("retry-after")) if headers else None
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    try:
        return max(float(value), 0.0) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER
