"""The one place errors become Slack messages: typed errors say why; anything else gets a short id
that is also in the log with its traceback."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.base import PlatformError
from bot.errors import ConflictError, PermissionDenied, UsageError
from bot.slack.context import SlackContext


class Said:
    """Collects what would go back to the person (the response_url answer)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, **message: Any) -> None:
        self.messages.append(message)


async def fail(error: Exception) -> None:
    raise error


@pytest.mark.parametrize(
    "error, expected",
    [
        (UsageError("unknown kind macro"), ":warning: unknown kind macro\nTry `/migration help`."),
        (PermissionDenied("only the approvers may"), ":no_entry: only the approvers may"),
        (ConflictError("a pause is already in place"), ":no_entry: a pause is already in place"),
        (
            PlatformError("HTTP 422: Actions: cannot be blank", status=422),
            ":x: Sandbox (sample helpdesk, no real customers) refused: HTTP 422: Actions: cannot be blank",
        ),
    ],
)
async def test_typed_errors_say_why_privately(sandbox_deps, error, expected):
    said = Said()
    slack = SlackContext(deps=sandbox_deps, client=AsyncWebClient(token="xoxb-unused"))
    await slack.run_safely(fail(error), said)
    assert said.messages == [{"text": expected, "response_type": "ephemeral", "replace_original": False}]


async def test_unknown_errors_get_an_id_that_is_in_the_log(sandbox_deps, caplog):
    said = Said()
    slack = SlackContext(deps=sandbox_deps, client=AsyncWebClient(token="xoxb-unused"))
    with caplog.at_level(logging.ERROR):
        await slack.run_safely(fail(RuntimeError("disk quota exceeded")), said)
    [message] = said.messages
    ident = re.search(r"error id `(err-[0-9a-f]{8})`", message["text"]).group(1)
    assert "quota" not in message["text"], "internals stay in the log"
    [record] = [r for r in caplog.records if ident in r.getMessage()]
    assert record.exc_info and "disk quota exceeded" in str(record.exc_info[1])
