"""The progress core on each database backend: exact totals, refusals, the guard preflight, the
unguarded-import warning, the failure-rate alert, batch listeners, and the coalescing publisher
(against an in-memory Publisher that can be slow and can defer like a rate-limited Slack)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import store
from bot.db import upgrade
from bot.deps import Deps
from bot.errors import ConflictError, NotFound
from bot.models import GuardStatus, ImportBatch, ImportRun
from bot.progress import (
    BatchReport,
    BatchStored,
    FailureWindow,
    Notice,
    ProgressService,
    PublishDeferred,
    RunView,
    alert_transition,
)
from tests.conftest import make_deps, make_settings


class RecordingPublisher:
    """A Publisher that records what it is asked to show; it can be slow and can defer (429)."""

    def __init__(self, *, latency: float = 0.0, defer: list[float] | None = None):
        self.latency = latency
        self.defer = list(defer or [])
        self.shown: list[tuple[str, float, Any]] = []
        self.attempts: list[tuple[str, float]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def _call(self, kind: str, payload: Any) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.attempts.append((kind, time.monotonic()))
        try:
            await asyncio.sleep(self.latency)
            if self.defer:
                raise PublishDeferred(self.defer.pop(0))
            self.shown.append((kind, time.monotonic(), payload))
        finally:
            self.in_flight -= 1

    async def post_run(self, view: RunView) -> tuple[str, str]:
        await self._call("post", view)
        return "C0MIGRATION", "1700000000.000100"

    async def update_run(self, channel: str, ts: str, view: RunView) -> None:
        await self._call("update", view)

    async def post_notice(self, channel: str, ts: str, notice: Notice, view: RunView) -> None:
        await self._call("notice", notice)

    def views(self) -> list[RunView]:
        return [payload for kind, _, payload in self.shown if kind in ("post", "update")]

    def notices(self, kind: str | None = None) -> list[Notice]:
        return [p for k, _, p in self.shown if k == "notice" and (kind is None or p.kind == kind)]


@contextlib.asynccontextmanager
async def sqlite_only(sqlite_url: str) -> AsyncIterator[Deps]:
    """Deps for behaviour that does not depend on the database backend (Slack, HTTP validation, the
    client): SQLite only, so the PostgreSQL run of the suite stays short."""
    await upgrade(sqlite_url)
    deps = await make_deps(make_settings(sqlite_url))
    try:
        yield deps
    finally:
        await deps.aclose()


@pytest.fixture
async def services(sandbox_deps: Deps) -> AsyncIterator[Callable[..., ProgressService]]:
    """Build ProgressServices on the test's deps; each is closed (its writer stopped) afterwards."""
    made: list[ProgressService] = []

    def make(*args: Any, **options: Any) -> ProgressService:
        made.append(ProgressService(sandbox_deps, *args, **options))
        return made[-1]

    yield make
    for service in made:
        await service.aclose()


async def set_guard(deps: Deps, state: GuardStatus) -> None:
    async with deps.db.session() as session:
        await store.set_guard(
            session, target=deps.target, platform=deps.platform.name, state=state, by="test", at=deps.clock()
        )
        await session.commit()


async def stored_rows(deps: Deps) -> tuple[int, int]:
    async with deps.db.engine.connect() as conn:
        runs = (await conn.execute(sa.select(sa.func.count()).select_from(ImportRun))).scalar_one()
        batches = (await conn.execute(sa.select(sa.func.count()).select_from(ImportBatch))).scalar_one()
    return runs, batches


def totals(expected: dict[int, tuple[int, int]]) -> tuple[int, int, int]:
    return sum(o for o, _ in expected.values()), sum(f for _, f in expected.values()), len(expected)


# --------------------------------------------------------------------------------------------------
# totals


async def test_totals_exact_under_duplicated_and_out_of_order_reports(services):
    service = services()
    run = await service.start_run(name="tickets 2019", total_records=10_000)
    rng = random.Random(3)
    expected: dict[int, tuple[int, int]] = {}
    for _round in range(3):  # each round: concurrent, shuffled; later rounds re-report earlier batches
        numbers = rng.sample(range(60), 40)
        figures = {n: (rng.randrange(100), rng.randrange(5)) for n in numbers}
        await asyncio.gather(
            *(service.report_batch(run.id, BatchReport(n, ok, failed)) for n, (ok, failed) in figures.items())
        )
        expected.update(figures)
    view = await service.run_view(run.id)
    assert (view.ok, view.failed, view.batches) == totals(expected)
    duplicate = next(iter(expected))
    await service.report_batch(run.id, BatchReport(duplicate, *expected[duplicate]))
    again = await service.run_view(run.id)
    assert (again.ok, again.failed, again.batches) == totals(expected), "the same report twice counts once"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    reports=st.lists(
        st.tuples(st.integers(0, 15), st.integers(0, 1000), st.integers(0, 50)), min_size=1, max_size=40
    )
)
async def test_the_last_report_of_each_batch_wins(services, reports):
    service = services()
    run = await service.start_run(name="property")
    for number, ok, failed in reports:
        await service.report_batch(run.id, BatchReport(number, ok, failed))
    expected = {number: (ok, failed) for number, ok, failed in reports}
    view = await service.run_view(run.id)
    assert (view.ok, view.failed, view.batches) == totals(expected)


async def test_unknown_run_is_not_found_and_nothing_is_stored(services, sandbox_deps):
    service = services()
    with pytest.raises(NotFound):
        await service.report_batch("run_missing", BatchReport(1, 10, 0))
    with pytest.raises(NotFound):
        await service.finish_run("run_missing")
    with pytest.raises(NotFound):
        await service.run_view("run_missing")
    assert await stored_rows(sandbox_deps) == (0, 0)


async def test_a_finished_run_takes_no_more_reports(services):
    service = services()
    run = await service.start_run(name="done")
    await service.report_batch(run.id, BatchReport(1, 10, 1))
    finished = await service.finish_run(run.id, status="failed")
    assert finished.status == "failed" and finished.finished and finished.last_batch_at is not None
    with pytest.raises(ConflictError, match="already failed"):
        await service.report_batch(run.id, BatchReport(2, 10, 0))
    with pytest.raises(ConflictError):
        await service.finish_run(run.id)
    view = await service.run_view(run.id)
    assert (view.ok, view.failed, view.batches, view.status) == (10, 1, 1, "failed")


async def test_a_group_with_a_refused_report_stores_the_others(services):
    service = services()
    open_run = await service.start_run(name="open")
    closed = await service.start_run(name="closed")
    await service.finish_run(closed.id)
    results = await asyncio.gather(
        service.report_batch(open_run.id, BatchReport(1, 5, 0)),
        service.report_batch(closed.id, BatchReport(1, 5, 0)),
        service.report_batch("run_nope", BatchReport(1, 5, 0)),
        service.report_batch(open_run.id, BatchReport(2, 7, 1)),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == ["BatchAck", "ConflictError", "NotFound", "BatchAck"]
    view = await service.run_view(open_run.id)
    assert (view.ok, view.failed, view.batches) == (12, 1, 2)
    assert (await service.run_view(closed.id)).batches == 0


async def test_no_batch_is_stored_after_its_run_finished(services):
    """Reports racing a finish: each is either acknowledged and counted, or refused with 409."""
    service = services()
    run = await service.start_run(name="race")

    async def report(number: int) -> int:
        await asyncio.sleep(random.random() / 100)
        try:
            await service.report_batch(run.id, BatchReport(number, 10, 0))
        except ConflictError:
            return 0
        return 10

    async def finish() -> None:
        await asyncio.sleep(0.02)
        await service.finish_run(run.id)

    *accepted, _ = await asyncio.gather(*(report(n) for n in range(200)), finish())
    view = await service.run_view(run.id)
    assert view.finished
    assert view.ok == sum(accepted), "every acknowledged report is counted, nothing after the finish"


# --------------------------------------------------------------------------------------------------
# the view's figures


async def test_percent_rate_and_eta_follow_the_clock(services, sandbox_deps):
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    now = [start]
    sandbox_deps.clock = lambda: now[0]
    service = services()
    run = await service.start_run(name="clocked", total_records=1000)
    now[0] = start + timedelta(seconds=50)
    await service.report_batch(run.id, BatchReport(1, 240, 10))
    view = await service.run_view(run.id)
    assert view.fraction == 0.25
    assert view.rate == 5.0  # 250 records in 50 s
    assert view.eta == timedelta(seconds=150)
    now[0] = start + timedelta(seconds=80)
    done = await service.finish_run(run.id)
    assert done.eta is None and done.elapsed == timedelta(seconds=80)


async def test_eta_by_batches_when_records_are_unknown(services, sandbox_deps):
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    now = [start]
    sandbox_deps.clock = lambda: now[0]
    service = services()
    run = await service.start_run(name="batches", total_batches=4)
    now[0] = start + timedelta(seconds=30)
    await service.report_batch(run.id, BatchReport(0, 100, 0))
    view = await service.run_view(run.id)
    assert view.fraction == 0.25 and view.eta == timedelta(seconds=90)


# --------------------------------------------------------------------------------------------------
# the guard preflight and the unguarded-import warning


async def test_preflight_is_safe_only_while_paused(services, sandbox_deps):
    service = services()
    assert not (await service.preflight()).safe_to_import, "no guard row yet means live"
    for state, safe in [
        (GuardStatus.LIVE, False),
        (GuardStatus.PAUSING, False),
        (GuardStatus.PAUSED, True),
        (GuardStatus.RESTORING, False),
    ]:
        await set_guard(sandbox_deps, state)
        preflight = await service.preflight()
        assert preflight.safe_to_import is safe, state
        [target] = preflight.targets
        assert (target.target, target.state, target.safe_to_import) == ("sandbox", state, safe)


async def test_batches_while_live_warn_once_per_run(services):
    publisher = RecordingPublisher()
    service = services(publisher, min_interval=0.01)
    run = await service.start_run(name="unguarded")
    acks = await asyncio.gather(*(service.report_batch(run.id, BatchReport(n, 10, 0)) for n in range(10)))
    acks.append(await service.report_batch(run.id, BatchReport(11, 10, 0)))
    assert all(ack.warning and "live" in ack.warning for ack in acks)
    await service.drain()
    assert [n.guard_state for n in publisher.notices("unguarded")] == ["live"]
    assert (await service.run_view(run.id)).warned_live

    restarted = services(publisher, min_interval=0.01)  # memory lost: the row decides
    await restarted.report_batch(run.id, BatchReport(12, 10, 0))
    await restarted.drain()
    assert len(publisher.notices("unguarded")) == 1


async def test_batches_while_paused_do_not_warn(services, sandbox_deps):
    await set_guard(sandbox_deps, GuardStatus.PAUSED)
    publisher = RecordingPublisher()
    service = services(publisher, min_interval=0.01)
    run = await service.start_run(name="guarded")
    ack = await service.report_batch(run.id, BatchReport(1, 10, 0))
    assert ack.warning is None and ack.guard.safe_to_import
    await service.drain()
    assert publisher.notices("unguarded") == []
    assert not (await service.run_view(run.id)).warned_live


async def test_batches_while_pausing_warn(services, sandbox_deps):
    await set_guard(sandbox_deps, GuardStatus.PAUSING)
    publisher = RecordingPublisher()
    service = services(publisher, min_interval=0.01)
    run = await service.start_run(name="too early")
    await service.report_batch(run.id, BatchReport(1, 10, 0))
    await service.drain()
    assert [n.guard_state for n in publisher.notices("unguarded")] == ["pausing"]


# --------------------------------------------------------------------------------------------------
# the failure-rate window


def test_failure_window_replaces_a_batch_and_forgets_old_ones():
    window = FailureWindow(size=3)
    window.record(1, 90, 10)
    window.record(1, 100, 0)  # reported again: replaces, does not add
    assert len(window) == 1 and window.rate == 0.0
    for number in (2, 3, 4):
        window.record(number, 50, 50)
    assert len(window) == 3 and window.rate == 0.5, "batch 1 fell out of the window"


def test_alert_crosses_up_and_re_arms_well_below():
    assert alert_transition(False, 0.03, 0.02) is True
    assert alert_transition(False, 0.02, 0.02) is None, "at the threshold is not across it"
    assert alert_transition(True, 0.05, 0.02) is None, "already alerted"
    assert alert_transition(True, 0.015, 0.02) is None, "below, but not well below: no flapping"
    assert alert_transition(True, 0.01, 0.02) is False


async def test_failure_alert_when_recent_batches_cross_the_threshold(services):
    publisher = RecordingPublisher()
    service = services(publisher, min_interval=0.01)
    run = await service.start_run(name="flaky")
    for number in range(20):
        await service.report_batch(run.id, BatchReport(number, 100, 1))  # 1%: under 2%
    await service.drain()
    assert publisher.notices("failure_alert") == []
    for number in range(20, 30):
        await service.report_batch(run.id, BatchReport(number, 90, 10, errors=[f"e{number}"]))
    await service.drain()
    [alert] = publisher.notices("failure_alert")
    assert alert.rate is not None and alert.rate > 0.02 and alert.window == 20 and alert.threshold == 0.02
    # 17 batches at 1/101 and three at 10/100 make 47/2017 > 2%: batch 22 crossed.
    assert alert.errors == ("e22",), "the errors of the batch that crossed"
    for number in range(30, 60):
        await service.report_batch(run.id, BatchReport(number, 100, 0))
    await service.drain()
    assert len(publisher.notices("failure_alert")) == 1
    assert len(publisher.notices("failure_recovered")) == 1
    await service.report_batch(run.id, BatchReport(60, 0, 100))
    await service.drain()
    assert len(publisher.notices("failure_alert")) == 2, "a new crossing alerts again"


# --------------------------------------------------------------------------------------------------
# batch listeners (the leak watcher's hook)


async def test_batch_listeners_get_each_stored_report_with_its_record_ids(services, sandbox_deps):
    seen: list[BatchStored] = []

    async def listener(event: BatchStored) -> None:
        seen.append(event)

    async def broken(event: BatchStored) -> None:
        raise RuntimeError("a listener's failure must not fail ingest")

    service = services(batch_listeners=[broken, listener])
    run = await service.start_run(name="records")
    await service.report_batch(run.id, BatchReport(4, 2, 0, record_ids=["t-1", "t-2"]))
    with pytest.raises(NotFound):
        await service.report_batch("run_nope", BatchReport(1, 1, 0, record_ids=["x"]))
    await service.drain()
    [event] = seen
    assert (event.run_id, event.batch, event.record_ids, event.target) == (
        run.id,
        4,
        ("t-1", "t-2"),
        "sandbox",
    )
    async with sandbox_deps.db.session() as session:
        rows = (await session.exec(sa.select(ImportBatch.record_ids))).all()  # type: ignore[call-overload]
    assert [list(row[0]) for row in rows] == [["t-1", "t-2"]]


# --------------------------------------------------------------------------------------------------
# coalescing


async def test_coalescing_bounds_renders_and_ends_on_the_exact_final_figures(services):
    interval = 0.1
    publisher = RecordingPublisher(latency=0.03)
    service = services(publisher, min_interval=interval)
    run = await service.start_run(name="busy", total_records=50_000)
    started = time.monotonic()

    async def client(offset: int) -> None:
        for number in range(offset, 500, 10):
            await service.report_batch(run.id, BatchReport(number, 99, 1))
            await asyncio.sleep(0.001)

    await asyncio.gather(*(client(offset) for offset in range(10)))
    await service.finish_run(run.id)
    await service.drain()
    elapsed = time.monotonic() - started
    views = publisher.views()
    renders = [at for kind, at in publisher.attempts if kind != "notice"]
    assert len(renders) <= elapsed / interval + 2, (len(renders), elapsed)
    assert len(views) < 500 / 5, "renders are coalesced, not one per report"
    assert publisher.max_in_flight == 1
    # Renders start `interval` apart (give or take the database read before each): never three in one.
    assert all(c - a >= interval for a, c in zip(renders, renders[2:], strict=False)), renders
    final = views[-1]
    assert (final.ok, final.failed, final.batches, final.status) == (49_500, 500, 500, "completed")
    assert [n.kind for n in publisher.notices()][-1] == "summary"
    assert publisher.shown[-1][0] == "notice", "the summary follows the final render"


async def test_a_deferred_publish_waits_and_then_shows_the_latest_state(services):
    publisher = RecordingPublisher(defer=[0.3])
    service = services(publisher, min_interval=0.01)
    run = await service.start_run(name="rate limited")
    for number in range(5):
        await service.report_batch(run.id, BatchReport(number, 10, 0))
    await service.drain()
    (_, first), (_, second) = publisher.attempts[:2]
    assert second - first >= 0.3, "Retry-After is honoured"
    assert publisher.views()[-1].ok == 50


async def test_without_a_publisher_ingest_still_works(services):
    service = services()
    run = await service.start_run(name="headless")
    await service.report_batch(run.id, BatchReport(1, 3, 0))
    assert (await service.finish_run(run.id)).ok == 3
