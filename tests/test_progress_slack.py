"""Import progress in the fake Slack (over a real socket, as slack_sdk needs): one message per run
updated in place, coalesced against a slow and rate-limiting Slack, thread notices, and an HTTP
ingest that never waits for Slack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot import api
from bot.blocks.progress import run_message
from bot.deps import Deps
from bot.http import create_http_app
from bot.models import GuardStatus
from bot.progress import BatchReport, GuardView, ProgressService, RunView
from bot.slack.context import SlackContext
from bot.slack.progress import SlackPublisher
from tests.fakes.slack import FakeSlack, block_kit_errors, serve_in_thread
from tests.test_progress import set_guard, sqlite_only

CHANNEL = "C0MIGRATION"


@pytest.fixture
async def sqlite_deps(sqlite_url: str) -> AsyncIterator[Deps]:
    async with sqlite_only(sqlite_url) as deps:
        yield deps


class InFlight:
    """Wraps the fake to count concurrent chat.update requests (the server runs in one thread)."""

    def __init__(self, fake: FakeSlack):
        self.fake = fake
        self.now = 0
        self.most = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        counted = scope["type"] == "http" and scope["path"].endswith("/chat.update")
        if counted:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            await self.fake(scope, receive, send)
        finally:
            if counted:
                self.now -= 1


@pytest.fixture
def fake_slack() -> Iterator[tuple[FakeSlack, InFlight]]:
    fake = FakeSlack()
    counter = InFlight(fake)
    with serve_in_thread(counter) as url:
        fake.base_url = url
        yield fake, counter


def service_for(
    deps: Deps, fake: FakeSlack, *, interval: float = 0.05, client: AsyncWebClient | None = None
) -> tuple[ProgressService, SlackContext]:
    slack = SlackContext(
        deps=deps, client=client or AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    )
    return ProgressService(deps, SlackPublisher(slack), min_interval=interval, spawn=slack.spawn), slack


def top_level(fake: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in fake.messages(CHANNEL) if m["thread_ts"] in (None, m["ts"])]


async def report_concurrently(
    service: ProgressService, run_id: str, batches: range, clients: int = 10
) -> None:
    async def client(offset: int) -> None:
        for number in batches[offset::clients]:
            await service.report_batch(run_id, BatchReport(number, 99, 1, record_ids=[f"t-{number}"]))

    await asyncio.gather(*(client(offset) for offset in range(clients)))


# --------------------------------------------------------------------------------------------------
# the message


async def test_one_message_per_run_updated_in_place_ending_exact(sqlite_deps, fake_slack):
    fake, _ = fake_slack
    await set_guard(sqlite_deps, GuardStatus.PAUSED)
    service, slack = service_for(sqlite_deps, fake)
    run = await service.start_run(name="tickets 2019", total_records=5000, source="zendesk-export.jsonl")
    await report_concurrently(service, run.id, range(40))
    await service.finish_run(run.id)
    await slack.drain()

    [message] = top_level(fake)
    assert message["updates"] >= 1, "updated in place, not reposted"
    assert "Import completed: tickets 2019" in message["text"]
    assert "3,960 ok, 40 failed" in message["text"]
    rendered = str(message["blocks"])
    assert run.id in rendered and "zendesk-export.jsonl" in rendered and "Duration" in rendered
    assert "`" + "█" * 16 + "░" * 4 + "`  *80%*  ·  4,000 of 5,000 records" in rendered
    [summary] = fake.replies(CHANNEL, message["ts"])
    assert "3,960 records ok, 40 (1.0%) failed, 40 batches" in summary["text"]
    view = await service.run_view(run.id)
    assert (view.slack_channel, view.slack_ts) == (CHANNEL, message["ts"])
    fake.assert_no_spec_violations()


async def test_a_restarted_service_updates_the_same_message(sqlite_deps, fake_slack):
    fake, _ = fake_slack
    service, slack = service_for(sqlite_deps, fake)
    run = await service.start_run(name="restart")
    await service.report_batch(run.id, BatchReport(1, 10, 0))
    await slack.drain()
    again, slack_again = service_for(sqlite_deps, fake)
    await again.report_batch(run.id, BatchReport(2, 10, 0))
    await again.finish_run(run.id)
    await slack_again.drain()
    [message] = top_level(fake)
    assert "20 ok" in message["text"]


# --------------------------------------------------------------------------------------------------
# coalescing against a slow, rate-limiting Slack


async def test_coalescing_against_a_slow_rate_limiting_slack(sqlite_deps, fake_slack):
    fake, counter = fake_slack
    interval = 0.2
    fake.set_latency("chat.update", 0.15)
    fake.rate_limit("chat.update", next_calls=2, retry_after=0)  # the client's retry handler waits
    await set_guard(sqlite_deps, GuardStatus.PAUSED)
    service, slack = service_for(sqlite_deps, fake, interval=interval)
    started = time.monotonic()
    run = await service.start_run(name="busy", total_records=100_000)

    async def steady(offset: int) -> None:  # about a second of reports, far more often than renders
        for number in range(offset, 1000, 10):
            await service.report_batch(run.id, BatchReport(number, 99, 1))
            await asyncio.sleep(0.008)

    await asyncio.gather(*(steady(offset) for offset in range(10)))
    await service.finish_run(run.id)
    await slack.drain()
    elapsed = time.monotonic() - started

    calls = fake.calls("chat.update")
    refused = [c for c in calls if c.status == 429]
    assert len(refused) == 2
    assert len(calls) - len(refused) <= elapsed / interval + 2, (len(calls), elapsed)
    assert len(calls) < 1000 / 20, "a render per report would be a thousand"
    assert counter.most == 1, "one chat.update in flight at a time"
    [message] = top_level(fake)
    assert "99,000 ok, 1,000 failed" in message["text"] and "completed" in message["text"]


async def test_a_429_storm_does_not_pile_up_updates(sqlite_deps, fake_slack):
    """The client gives a 429 straight back (no retries of its own): the coalescer waits, re-reads the
    latest totals, and tries once more; reports keep arriving meanwhile."""
    fake, counter = fake_slack
    interval = 0.1
    fake.rate_limit("chat.update", next_calls=6, retry_after=0)
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=0))
    await set_guard(sqlite_deps, GuardStatus.PAUSED)
    service, slack = service_for(sqlite_deps, fake, interval=interval, client=client)
    started = time.monotonic()
    run = await service.start_run(name="storm")
    await report_concurrently(service, run.id, range(300))
    await asyncio.sleep(0.3)  # the storm lasts a while after the last report
    await service.finish_run(run.id)
    await slack.drain()
    elapsed = time.monotonic() - started
    calls = fake.calls("chat.update")
    assert len(calls) <= elapsed / interval + 2, (len(calls), elapsed)
    assert counter.most == 1
    assert calls[-1].ok and "29,700 ok, 300 failed" in top_level(fake)[0]["text"]


async def test_retry_after_is_honoured(sqlite_deps, fake_slack):
    fake, _ = fake_slack
    fake.rate_limit("chat.update", next_calls=1, retry_after=1)
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=0))
    service, slack = service_for(sqlite_deps, fake, interval=0.01, client=client)
    run = await service.start_run(name="patient")
    await service.report_batch(run.id, BatchReport(1, 5, 0))
    await slack.drain()
    await service.report_batch(run.id, BatchReport(2, 5, 0))
    await slack.drain()
    refused, accepted = fake.calls("chat.update")[:2]
    assert refused.status == 429 and accepted.ok
    assert accepted.timestamp - refused.timestamp >= 1.0
    assert "10 ok" in top_level(fake)[0]["text"]


# --------------------------------------------------------------------------------------------------
# notices in the thread


async def test_the_unguarded_warning_is_loud_and_posted_once(sqlite_deps, fake_slack):
    fake, _ = fake_slack
    service, slack = service_for(sqlite_deps, fake)
    run = await service.start_run(name="oops")
    await report_concurrently(service, run.id, range(30))
    await service.report_batch(run.id, BatchReport(30, 1, 0))
    await slack.drain()
    [message] = top_level(fake)
    warnings = [r for r in fake.replies(CHANNEL, message["ts"]) if "Unguarded import" in r["text"]]
    assert len(warnings) == 1
    assert "<@UONCALL1>" in warnings[0]["text"] and "guard is *live*" in warnings[0]["text"]
    [post] = [c for c in fake.calls("chat.postMessage") if "Unguarded import" in str(c.params.get("text"))]
    assert str(post.params["reply_broadcast"]).lower() in ("true", "1"), "broadcast to the channel too"
    assert "Unguarded import" in str(message["blocks"]), "the run message itself says so"
    assert (await service.run_view(run.id)).warned_live


async def test_no_warning_while_paused(sqlite_deps, fake_slack):
    fake, _ = fake_slack
    await set_guard(sqlite_deps, GuardStatus.PAUSED)
    service, slack = service_for(sqlite_deps, fake)
    run = await service.start_run(name="guarded")
    await report_concurrently(service, run.id, range(10))
    await slack.drain()
    assert not any("Unguarded" in str(m["blocks"]) for m in fake.messages(CHANNEL))


async def test_a_failure_rate_alert_in_the_thread(sqlite_deps, fake_slack):
    fake, _ = fake_slack
    await set_guard(sqlite_deps, GuardStatus.PAUSED)
    service, slack = service_for(sqlite_deps, fake)
    run = await service.start_run(name="flaky")
    for number in range(10):
        await service.report_batch(
            run.id, BatchReport(number, 90, 10, errors=["t-1: requester email invalid <x@y>"])
        )
    await slack.drain()
    [message] = top_level(fake)
    [alert] = [r for r in fake.replies(CHANNEL, message["ts"]) if "Failure rate" in r["text"]]
    assert "10.0%" in alert["text"] and "2.0%" in alert["text"]
    assert "&lt;x@y&gt;" in alert["text"], "errors are escaped for mrkdwn"


# --------------------------------------------------------------------------------------------------
# the HTTP request never waits for Slack


async def test_http_ingest_answers_before_slack_does(sqlite_deps, fake_slack):
    fake, _ = fake_slack
    fake.set_latency("chat.postMessage", 0.6)
    fake.set_latency("chat.update", 0.6)
    slack = SlackContext(deps=sqlite_deps, client=AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
    app = create_http_app(sqlite_deps, None, api.routes(sqlite_deps, slack))
    headers = {"Authorization": "Bearer test-api-token"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://guard.test"
    ) as http:
        began = time.monotonic()
        run = (await http.post("/api/v1/runs", json={"name": "fast"}, headers=headers)).json()
        for number in range(5):
            response = await http.post(
                f"/api/v1/runs/{run['id']}/batches",
                json={"batch": number, "ok": 1, "failed": 0},
                headers=headers,
            )
            assert response.status_code == 200
        assert time.monotonic() - began < 0.5, "six answers while Slack takes 0.6 s for one call"
    await slack.drain()
    assert "5 ok" in top_level(fake)[0]["text"]


def test_the_bar_is_full_not_longer_when_more_arrives_than_announced():
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    view = RunView(
        id="run_1",
        target="sandbox",
        name="<b>more than announced</b>",
        source=None,
        status="running",
        ok=130,
        failed=0,
        batches=2,
        total_records=100,
        total_batches=None,
        created_at=start,
        finished_at=None,
        last_batch_at=start,
        as_of=start + timedelta(seconds=10),
        guard=GuardView("sandbox", "sandbox", "paused"),
    )
    text, blocks = run_message(view)
    assert "`" + "█" * 20 + "`  *130%*" in str(blocks)
    assert "&lt;b&gt;" in text, "a name is escaped in the mrkdwn fallback"
    assert block_kit_errors(blocks) == []
