"""Leak watch: imported conversations sampled per batch, workflow parts stored once per (run,
record, part), alerts posted in the run's progress thread (or the migration channel)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from bot import leaks
from bot.deps import Deps
from bot.errors import NotFound
from bot.models import ImportRun
from bot.progress import BatchStored
from bot.slack.leaks import make_batch_listener
from tests.conftest import make_deps, make_settings
from tests.fakes.intercom import SKIP_REASON, FakeIntercom, specs_available
from tests.fakes.slack import FakeSlack
from tests.slack_harness import CHANNEL, SLACK_SETTINGS, fake_slack, running_bot

pytestmark = pytest.mark.skipif(not specs_available(), reason=SKIP_REASON)


def intercom_settings(database_url: str, **extra: object):  # type: ignore[no-untyped-def]
    return make_settings(
        database_url,
        guard_platform="intercom",
        intercom_access_token="test-token",
        intercom_url="http://intercom.test",
        **extra,
    )


@pytest.fixture
def intercom() -> Iterator[FakeIntercom]:
    fake = FakeIntercom(token="test-token")
    fake.add_workflow("101", "Auto-reply", state="live")
    for conversation in ("c1", "c2", "c3"):
        fake.add_part(conversation, "comment", body="<p>imported</p>")
    fake.add_workflow_part("c1", "Auto-reply")
    fake.add_workflow_part("c1", "Tag VIPs", part_type="conversation_attribute_updated_by_workflow")
    fake.add_workflow_part("c3", "Auto-reply")
    yield fake
    fake.assert_conformant()


@pytest.fixture
async def deps(database_url: str, intercom: FakeIntercom) -> AsyncIterator[Deps]:
    deps = await make_deps(intercom_settings(database_url), httpx.ASGITransport(app=intercom))
    await add_run(deps, "run_1")
    yield deps
    await deps.aclose()


async def add_run(deps: Deps, run_id: str, *, channel: str | None = None, ts: str | None = None) -> None:
    async with deps.db.session() as session:
        session.add(
            ImportRun(
                id=run_id, target="intercom", name=f"Import {run_id}", slack_channel=channel, slack_ts=ts
            )
        )
        await session.commit()


def conversation_reads(fake: FakeIntercom) -> list[str]:
    return [call.path for call in fake.calls if call.path.startswith("/conversations/")]


async def test_workflow_parts_are_stored_once_and_only_new_ones_returned(deps, intercom):
    alerts = await leaks.check_batch(deps, "run_1", ["c1", "c2", "c3", "missing"], sample=10)
    assert sorted((a.record_id, a.workflow, a.part_type) for a in alerts) == [
        ("c1", "Auto-reply", "operator_workflow_event"),
        ("c1", "Tag VIPs", "conversation_attribute_updated_by_workflow"),
        ("c3", "Auto-reply", "operator_workflow_event"),
    ]
    assert all(a.id is not None and a.seen_at is not None for a in alerts)
    assert await leaks.check_batch(deps, "run_1", ["c1", "c3"], sample=10) == [], "alerted once"
    intercom.add_workflow_part("c3", "Auto-reply")  # the workflow fires again later: a new part
    [again] = await leaks.check_batch(deps, "run_1", ["c3"], sample=10)
    assert again.record_id == "c3"
    await add_run(deps, "run_2")
    assert len(await leaks.check_batch(deps, "run_2", ["c1"], sample=10)) == 2, "per run"
    assert len(await leaks.alerts_of(deps, "run_1")) == 4


async def test_only_a_sample_is_read(deps, intercom):
    records = [f"x{i}" for i in range(50)]
    await leaks.check_batch(deps, "run_1", records, sample=5, rng=random.Random(7))
    reads = conversation_reads(intercom)
    assert len(reads) == 5 and len(set(reads)) == 5
    assert leaks.pick(["a", "a", "b", " "], 5) == ["a", "b"]
    assert await leaks.check_batch(deps, "run_1", records, sample=0) == []


async def test_two_checks_at_once_store_each_part_once(deps, intercom):
    both = await asyncio.gather(
        leaks.check_batch(deps, "run_1", ["c1", "c3"], sample=10),
        leaks.check_batch(deps, "run_1", ["c1", "c3"], sample=10),
    )
    assert sum(len(found) for found in both) == 3
    assert len(await leaks.alerts_of(deps, "run_1")) == 3


async def test_an_unreadable_conversation_does_not_stop_the_watch(deps, intercom):
    await deps.platform.conversation_link("c1")  # the workspace's app id is known from here on
    intercom.inject_errors(403)
    assert await leaks.check_batch(deps, "run_1", ["c1"], sample=10) == [], "logged and skipped"
    assert intercom.calls[-1].status == 403
    assert len(await leaks.check_batch(deps, "run_1", ["c1"], sample=10)) == 2, "found when sampled again"


async def test_unknown_run_and_platforms_without_detection(deps, sandbox_deps):
    with pytest.raises(NotFound):
        await leaks.check_batch(deps, "run_404", ["c1"])
    assert not leaks.can_watch(sandbox_deps)
    assert await leaks.check_batch(sandbox_deps, "run_1", ["c1"]) == []


# ---- Slack ------------------------------------------------------------------------------------


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with fake_slack() as fake:
        yield fake


def stored(run_id: str, record_ids: list[str]) -> BatchStored:
    """What the progress service hands its batch listeners after a report is committed."""
    return BatchStored(
        run_id=run_id,
        target="intercom",
        batch=1,
        ok=len(record_ids),
        failed=0,
        errors=(),
        record_ids=tuple(record_ids),
        reported_at=datetime.now(UTC),
        guard_state="paused",
    )


async def test_alerts_go_to_the_runs_thread_or_the_channel(database_url, slack, intercom):
    settings = intercom_settings(database_url, **SLACK_SETTINGS)
    async with running_bot(settings, slack, httpx.ASGITransport(app=intercom)) as bot:
        _, progress_ts = await bot.slack.post(text="Import run_1", blocks=[])
        await add_run(bot.deps, "run_1", channel=CHANNEL, ts=progress_ts)
        await add_run(bot.deps, "run_2")  # reported without a progress message
        listener = make_batch_listener(bot.deps, bot.slack, sample=10)

        await listener(stored("run_1", ["c1", "c2"]))
        await bot.slack.drain()
        [alert] = slack.replies(CHANNEL, progress_ts)
        assert "Auto-reply" in alert["text"] and "Tag VIPs" in alert["text"]
        assert "conversation/c1|conversation c1>" in str(alert["blocks"])

        await listener(stored("run_2", ["c3", "c2"]))
        await bot.slack.drain()
        top = [m for m in bot.bot_messages() if m["thread_ts"] is None and "Workflow leak" in m["text"]]
        assert len(top) == 1 and "conversation c3" in str(top[0]["blocks"])

        await listener(stored("run_1", ["c1", "c2"]))
        await listener(stored("run_2", ["c3"]))
        await bot.slack.drain()
        assert len([m for m in slack.messages(CHANNEL) if "Workflow leak" in m["text"]]) == 2, "once each"
    slack.assert_no_spec_violations()


async def test_listener_returns_before_the_platform_answers(database_url, slack, intercom):
    settings = intercom_settings(database_url, **SLACK_SETTINGS)
    async with running_bot(settings, slack, httpx.ASGITransport(app=intercom)) as bot:
        await add_run(bot.deps, "run_1")
        listener = make_batch_listener(bot.deps, bot.slack, sample=10)
        await listener(stored("run_1", ["c1"]))
        await listener(stored("run_1", ["c3"]))  # the run's previous sample is still being read: skipped
        assert intercom.calls == [], "nothing read before the listener returned"
        await bot.slack.drain()
        assert {a.record_id for a in await leaks.alerts_of(bot.deps, "run_1")} == {"c1"}
