"""Reminder rows and the tick, on each database backend, with an injected clock (nothing sleeps).

`deliver` here is what the Slack layer passes in production: a callable taking the claimed row and
returning the ts of the message it posted. This one records what it would have posted, reading the
message's view through bot.reminders.reminder_view like the Slack layer does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from bot import engine, reminders, store
from bot.deps import Deps
from bot.errors import ConflictError, NotFound, PermissionDenied
from bot.models import AuditEvent, ChangeRequest, Guard, GuardStatus, ImportBatch, ImportRun, Reminder
from bot.planning import PauseOptions
from bot.reminders import ReminderKind, ReminderStatus
from tests.conftest import make_deps, make_settings

REQUESTER = "UREQUESTER"
MANAGER = "UMANAGER1"
ONCALL = "UONCALL1"
START = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
OFF = {"disable": 8, "exempt": 1}  # the sandbox: 8 automations switched off, 1 SLA policy exempted


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Recorder:
    """A deliver callable: one 'post' per call, with whom it would mention."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.posts: list[dict[str, Any]] = []
        self.fail = 0

    async def __call__(self, reminder: Reminder) -> str:
        await asyncio.sleep(0)  # let other workers interleave
        if self.fail:
            self.fail -= 1
            raise RuntimeError("slack is down")
        view = await reminders.reminder_view(self.deps, reminder)
        self.posts.append({"id": reminder.id, "kind": reminder.kind, "mentions": view.mentions, "view": view})
        return f"{1_800_000_000 + len(self.posts)}.000100"

    def kinds(self) -> list[str]:
        return [p["kind"] for p in self.posts]


def settings(database_url: str, **overrides: Any):  # type: ignore[no-untyped-def]
    values = {"guard_remind_every": "1h", "guard_escalate_after": 2, "guard_approval_ttl": "4h"}
    return make_settings(database_url, **{**values, **overrides})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def deps(database_url: str, clock: Clock) -> AsyncIterator[Deps]:
    deps = await make_deps(settings(database_url))
    deps.clock = clock
    yield deps
    await deps.aclose()


async def pause(deps: Deps, *, planned_for: timedelta | None = None) -> ChangeRequest:
    planned_end = deps.clock() + planned_for if planned_for else None
    outcome = await engine.request_pause(deps, PauseOptions(), actor=REQUESTER, planned_end_at=planned_end)
    await engine.decide(deps, outcome.request.id, actor=MANAGER, approve=True)
    applied = await engine.apply(deps, outcome.request.id, actor=MANAGER)
    assert applied.request.status == "applied"
    return applied.request


async def restore(deps: Deps) -> None:
    outcome = await engine.request_restore(deps, actor=ONCALL, approved=True)
    applied = await engine.apply(deps, outcome.request.id, actor=ONCALL)
    assert applied.request.status == "applied"


async def rows(deps: Deps, **where: Any) -> list[Reminder]:
    async with deps.db.session() as session:
        query = select(Reminder).order_by(col(Reminder.due_at), col(Reminder.id))
        for name, value in where.items():
            query = query.where(getattr(Reminder, name) == value)
        return list(await session.exec(query))


async def guard(deps: Deps) -> Guard:
    async with deps.db.session() as session:
        row = await session.get(Guard, deps.target)
    assert row is not None
    return row


# ---- firing, escalation, answers -------------------------------------------------------------


async def test_restore_reminder_fires_when_due_and_not_before(deps, clock):
    await pause(deps)
    [scheduled] = await rows(deps, status="scheduled")
    assert (scheduled.kind, scheduled.due_at) == ("restore", START + timedelta(hours=1))
    assert (await reminders.next_reminder(deps)).id == scheduled.id, "what /migration status shows"
    deliver = Recorder(deps)

    clock.advance(minutes=59)
    assert await reminders.tick(deps, deliver, worker_id="w1") == 0
    clock.advance(minutes=1)
    assert await reminders.tick(deps, deliver, worker_id="w1") == 1
    assert await reminders.tick(deps, deliver, worker_id="w1") == 0, "delivered once"

    [done] = await rows(deps, id=scheduled.id)
    assert done.status == "delivered" and done.slack_ts == "1800000001.000100"
    assert done.delivered_at == clock.now and done.slack_channel == "C0MIGRATION"
    [following] = await rows(deps, status="scheduled")
    assert (following.kind, following.due_at) == ("restore", clock.now + timedelta(hours=1))
    view = deliver.posts[0]["view"]
    assert view.paused_for == timedelta(hours=1)
    assert (view.pause.requester, view.pause.decided_by) == (REQUESTER, MANAGER)
    assert view.off == OFF
    assert (await guard(deps)).unanswered_reminders == 1


async def test_escalates_after_the_configured_count_and_acknowledging_resets_it(deps, clock):
    await pause(deps)
    deliver = Recorder(deps)
    for _ in range(3):
        clock.advance(hours=1)
        assert await reminders.tick(deps, deliver, worker_id="w1") == 1
    oncall_only, with_approvers = [ONCALL], [ONCALL, MANAGER, "SAPPROVERS"]
    assert [p["mentions"] for p in deliver.posts] == [oncall_only, oncall_only, with_approvers]

    await reminders.acknowledge(deps, deliver.posts[-1]["id"], by=ONCALL)
    assert (await guard(deps)).unanswered_reminders == 0
    for _ in range(3):
        clock.advance(hours=1)
        await reminders.tick(deps, deliver, worker_id="w1")
    assert [p["mentions"] for p in deliver.posts[3:]] == [oncall_only, oncall_only, with_approvers]
    async with deps.db.session() as session:
        acks = await session.exec(select(AuditEvent).where(AuditEvent.action == "reminder_acknowledged"))
        assert [a.actor for a in acks] == [ONCALL]


async def test_escalate_after_one(database_url, clock):
    deps = await make_deps(settings(database_url, guard_escalate_after=1))
    deps.clock = clock
    try:
        await pause(deps)
        deliver = Recorder(deps)
        for _ in range(2):
            clock.advance(hours=1)
            await reminders.tick(deps, deliver, worker_id="w1")
        assert [MANAGER in p["mentions"] for p in deliver.posts] == [False, True]
    finally:
        await deps.aclose()


async def test_snooze_moves_the_next_reminder_and_counts_as_an_answer(deps, clock):
    await pause(deps)
    deliver = Recorder(deps)
    clock.advance(hours=1)
    await reminders.tick(deps, deliver, worker_id="w1")
    clicked = deliver.posts[0]["id"]

    until = await reminders.snooze(deps, clicked, by=ONCALL, duration=timedelta(hours=2))
    assert until == clock.now + timedelta(hours=2)
    [moved] = await rows(deps, status="scheduled")
    assert moved.due_at == until
    assert (await guard(deps)).unanswered_reminders == 0

    clock.advance(hours=1)
    assert await reminders.tick(deps, deliver, worker_id="w1") == 0, "the 1h reminder was snoozed"
    clock.advance(hours=1)
    assert await reminders.tick(deps, deliver, worker_id="w1") == 1


async def test_snooze_while_nothing_is_scheduled_schedules_one(deps, clock):
    await pause(deps)
    [first] = await rows(deps, status="scheduled")
    claimed = await reminders.claim_due(deps, worker_id="busy", now=first.due_at)  # being posted
    assert [r.id for r in claimed] == [first.id]
    until = await reminders.snooze(deps, first.id, by=ONCALL, duration=timedelta(hours=4))
    assert [(r.kind, r.due_at) for r in await rows(deps, status="scheduled")] == [("restore", until)]


async def test_restore_cancels_every_reminder_of_the_target(deps, clock):
    await pause(deps, planned_for=timedelta(hours=8))
    assert sorted(r.kind for r in await rows(deps, status="scheduled")) == ["planned_end", "restore"]
    await restore(deps)
    assert await rows(deps, status="scheduled") == []
    assert {r.status for r in await rows(deps)} == {"cancelled"}
    clock.advance(days=3)
    assert await reminders.tick(deps, Recorder(deps), worker_id="w1") == 0
    assert (await guard(deps)).unanswered_reminders == 0


async def test_answers_are_refused_once_live(deps, clock):
    await pause(deps)
    [reminder] = await rows(deps, status="scheduled")
    await restore(deps)
    with pytest.raises(ConflictError, match="live again"):
        await reminders.snooze(deps, reminder.id, by=ONCALL)
    with pytest.raises(ConflictError, match="live again"):
        await reminders.acknowledge(deps, reminder.id, by=ONCALL)
    with pytest.raises(NotFound):
        await reminders.acknowledge(deps, 987654, by=ONCALL)


async def test_planned_end_fires_at_the_end_of_pause_for(deps, clock):
    request = await pause(deps, planned_for=timedelta(hours=8))
    assert request.planned_end_at == START + timedelta(hours=8)
    deliver = Recorder(deps)
    clock.advance(hours=7, minutes=59)
    for _ in range(7):
        await reminders.tick(deps, deliver, worker_id="w1", now=None)
    assert "planned_end" not in deliver.kinds()
    clock.advance(minutes=1)
    await reminders.tick(deps, deliver, worker_id="w1")
    assert deliver.kinds().count("planned_end") == 1
    clock.advance(hours=8)
    await reminders.tick(deps, deliver, worker_id="w1")
    assert deliver.kinds().count("planned_end") == 1, "a planned end is reminded once"


async def test_a_stale_row_for_a_live_target_is_cancelled_not_posted(deps, clock):
    async with deps.db.session() as session:
        await store.get_guard(session, target=deps.target, platform="sandbox")
        reminders.schedule(session, deps, kind=ReminderKind.RESTORE, due_at=START)
        await session.commit()
    deliver = Recorder(deps)
    assert await reminders.tick(deps, deliver, worker_id="w1") == 0
    assert deliver.posts == []
    assert [r.status for r in await rows(deps)] == ["cancelled"]


# ---- approvals: nudge and expiry -------------------------------------------------------------


async def test_pending_request_nudges_approvers_after_30_minutes(deps, clock):
    outcome = await engine.request_pause(deps, PauseOptions(), actor=REQUESTER)
    kinds = {r.kind: r.due_at for r in await rows(deps, status="scheduled")}
    assert kinds == {
        "approval_nudge": START + timedelta(minutes=30),
        "approval_expiry": START + timedelta(hours=4),
    }
    deliver = Recorder(deps)
    clock.advance(minutes=29)
    assert await reminders.tick(deps, deliver, worker_id="w1") == 0
    clock.advance(minutes=1)
    assert await reminders.tick(deps, deliver, worker_id="w1") == 1
    assert deliver.posts[0]["kind"] == "approval_nudge"
    assert deliver.posts[0]["mentions"] == [MANAGER, "SAPPROVERS"]
    assert deliver.posts[0]["view"].request.id == outcome.request.id

    await engine.decide(deps, outcome.request.id, actor=MANAGER, approve=False)
    assert [r.status for r in await rows(deps, kind="approval_expiry")] == ["cancelled"]


async def test_pending_request_expires_after_the_ttl(deps, clock):
    outcome = await engine.request_pause(deps, PauseOptions(), actor=REQUESTER)
    deliver = Recorder(deps)
    clock.advance(hours=4)
    assert await reminders.tick(deps, deliver, worker_id="w1") == 2  # the nudge, then the expiry
    assert deliver.kinds() == ["approval_nudge", "approval_expiry"]
    async with deps.db.session() as session:
        request = await store.get_request(session, request_id=outcome.request.id)
        assert (request.status, request.finished_at) == ("expired", clock.now)
        events = await session.exec(select(AuditEvent).where(AuditEvent.action == "expired"))
        assert [e.request_id for e in events] == [request.id]
    with pytest.raises(ConflictError, match="already expired"):
        await engine.decide(deps, outcome.request.id, actor=MANAGER, approve=True)


async def test_approval_before_the_nudge_cancels_it(deps, clock):
    outcome = await engine.request_pause(deps, PauseOptions(), actor=REQUESTER)
    await engine.decide(deps, outcome.request.id, actor=MANAGER, approve=True)
    clock.advance(hours=5)
    deliver = Recorder(deps)
    await reminders.tick(deps, deliver, worker_id="w1")
    assert not [k for k in deliver.kinds() if k.startswith("approval")]


async def test_a_nudge_for_a_request_decided_meanwhile_is_not_posted(deps, clock):
    outcome = await engine.request_pause(deps, PauseOptions(), actor=REQUESTER)
    async with deps.db.session() as session:  # decided by a path that skipped the hook
        await store.compare_and_set_status(
            session, request_id=outcome.request.id, expected=("pending",), status="rejected"
        )
        await session.commit()
    clock.advance(hours=5)
    deliver = Recorder(deps)
    assert await reminders.tick(deps, deliver, worker_id="w1") == 0
    assert {r.status for r in await rows(deps)} == {"cancelled"}


# ---- imports shown in the reminder -----------------------------------------------------------


async def test_view_lists_active_import_runs_with_their_last_batch(deps, clock):
    await pause(deps)
    async with deps.db.session() as session:
        session.add(ImportRun(id="run_1", target=deps.target, name="tickets 2019", total_batches=40))
        session.add(ImportRun(id="run_2", target=deps.target, name="done", status="completed"))
        await session.flush()
        session.add(ImportBatch(run_id="run_1", batch=1, ok=90, failed=10, reported_at=START))
        session.add(ImportBatch(run_id="run_1", batch=2, ok=100, failed=0, reported_at=START))
        await session.commit()
    [reminder] = await rows(deps, status="scheduled")
    view = await reminders.reminder_view(deps, reminder)
    [run] = view.runs
    assert (run.run.id, run.last_batch.batch, run.batches, run.ok, run.failed) == ("run_1", 2, 2, 190, 10)


# ---- authorisation ---------------------------------------------------------------------------


async def test_only_oncall_and_approvers_may_answer(database_url):
    async def member(user: str, ids: list[str]) -> bool:
        return user in ids or (user == "UGROUPIE" and "SAPPROVERS" in ids)

    configured = settings(database_url)
    for user in (ONCALL, MANAGER, "UGROUPIE"):
        await reminders.authorize_answer(configured, user, is_member=member)
    with pytest.raises(PermissionDenied, match="only on-call"):
        await reminders.authorize_answer(configured, "USTRANGER", is_member=member)
    nobody = settings(database_url, guard_oncall="", guard_approvers="")
    with pytest.raises(PermissionDenied, match="nobody can"):
        await reminders.authorize_answer(nobody, ONCALL, is_member=member)


# ---- restarts, crashes and replicas ----------------------------------------------------------


async def test_a_restart_between_scheduling_and_due_time_delivers_once(database_url, clock):
    first = await make_deps(settings(database_url))
    first.clock = clock
    await pause(first)
    await first.aclose()  # the process goes away; only the database remains

    clock.advance(hours=1)
    second = await make_deps(settings(database_url))
    second.clock = clock
    try:
        deliver = Recorder(second)
        assert await reminders.tick(second, deliver, worker_id="after-restart") == 1
        assert await reminders.tick(second, deliver, worker_id="after-restart") == 0
        assert deliver.kinds() == ["restore"]
    finally:
        await second.aclose()


async def test_a_crash_after_claiming_delivers_once_after_the_lease(deps, clock):
    await pause(deps)
    clock.advance(hours=1)
    [claimed] = await reminders.claim_due(deps, worker_id="A")  # A crashes right here
    deliver = Recorder(deps)
    assert await reminders.tick(deps, deliver, worker_id="B") == 0, "A's lease still holds"
    clock.advance(seconds=reminders.LEASE.total_seconds() - 1)
    assert await reminders.tick(deps, deliver, worker_id="B") == 0
    clock.advance(seconds=1)
    assert await reminders.tick(deps, deliver, worker_id="B") == 1
    assert await reminders.tick(deps, deliver, worker_id="B") == 0
    assert [p["id"] for p in deliver.posts] == [claimed.id]
    [row] = await rows(deps, id=claimed.id)
    assert (row.status, row.claimed_by, row.attempts) == ("delivered", "B", 2)


async def test_posted_but_not_marked_delivered_is_completed_without_posting_again(deps, clock):
    await pause(deps)
    clock.advance(hours=1)
    [claimed] = await reminders.claim_due(deps, worker_id="A")
    await reminders.record_posted(deps, claimed, ts="1700000000.000001")  # A posted, then crashed
    clock.advance(seconds=reminders.LEASE.total_seconds())
    deliver = Recorder(deps)
    assert await reminders.tick(deps, deliver, worker_id="B") == 1
    assert deliver.posts == [], "the recorded ts says it is posted already"
    [row] = await rows(deps, id=claimed.id)
    assert (row.status, row.slack_ts) == ("delivered", "1700000000.000001")
    assert (await guard(deps)).unanswered_reminders == 1, "what follows a delivery happens once"
    assert len(await rows(deps, status="scheduled")) == 1


async def test_a_failed_post_is_retried_later_not_dropped(deps, clock):
    await pause(deps)
    clock.advance(hours=1)
    deliver = Recorder(deps)
    deliver.fail = 1
    assert await reminders.tick(deps, deliver, worker_id="w1") == 0
    [row] = await rows(deps, kind="restore")
    assert (row.status, row.due_at) == ("scheduled", clock.now + reminders.RETRY_BACKOFF[0])
    clock.advance(seconds=reminders.RETRY_BACKOFF[0].total_seconds())
    assert await reminders.tick(deps, deliver, worker_id="w1") == 1
    assert len(deliver.posts) == 1


async def test_two_schedulers_deliver_100_due_reminders_exactly_once(database_url, clock):
    """Two replicas (two engines, two workers) on one database, ticking at the same time.
    Runs on PostgreSQL (FOR UPDATE SKIP LOCKED) when MIGRATION_GUARD_TEST_DATABASE_URL is set."""
    one, two = await make_deps(settings(database_url)), await make_deps(settings(database_url))
    one.clock = two.clock = clock
    try:
        async with one.db.session() as session:
            await store.set_guard(
                session, target="sandbox", platform="sandbox", state=GuardStatus.PAUSED, by=MANAGER, at=START
            )
            for n in range(100):
                due = START - timedelta(seconds=n)
                reminders.schedule(
                    session, one, kind=ReminderKind.PLANNED_END, due_at=due, request_id=f"r{n}"
                )
            await session.commit()
        posted: list[int] = []

        async def deliver(reminder: Reminder) -> str:
            await asyncio.sleep(0)
            posted.append(reminder.id)
            return f"1800000000.{reminder.id:06d}"

        async def replica(deps: Deps, worker: str) -> int:
            total = 0
            while n := await reminders.tick(deps, deliver, worker_id=worker, limit=7):
                total += n
            return total

        for deps in (one, two):  # connections open, so both replicas start claiming at once
            assert await reminders.next_reminder(deps) is not None
        counts = await asyncio.gather(replica(one, "replica-1"), replica(two, "replica-2"))
        # a replica may stop while the other still holds claims; a last round picks up nothing new
        counts.append(await replica(one, "replica-1"))
        assert sum(counts) == 100
        assert len(posted) == 100 and len(set(posted)) == 100
        done = await rows(one)
        assert {r.status for r in done} == {ReminderStatus.DELIVERED}
        assert {r.claimed_by for r in done} <= {"replica-1", "replica-2"}
        assert all(r.attempts == 1 for r in done)
    finally:
        await one.aclose()
        await two.aclose()


async def test_scheduler_ticks_on_its_own(deps, clock):
    """The APScheduler job is only the clock: started, it claims and delivers without a call."""
    await pause(deps)
    clock.advance(hours=1)
    delivered = asyncio.Event()

    async def deliver(reminder: Reminder) -> str:
        delivered.set()
        return "1800000000.000001"

    scheduler = reminders.start_scheduler(deps, deliver, worker_id="clock", interval=60)
    try:
        job = scheduler.get_job("reminders")
        assert (job.max_instances, job.coalesce) == (1, True)
        await asyncio.wait_for(delivered.wait(), timeout=5)  # the first run is immediate
        for _ in range(500):
            if (await rows(deps, kind="restore"))[0].status == "delivered":
                break
            await asyncio.sleep(0.01)
        assert (await rows(deps, kind="restore"))[0].status == "delivered"
    finally:
        scheduler.shutdown(wait=False)


async def test_a_claim_that_waited_behind_slow_posts_is_renewed_not_posted_twice(deps, clock):
    """Worker A's batch: the first post takes almost a lease. The second reminder's claim is renewed
    when A reaches it, so worker B, ticking meanwhile, finds nothing to take."""
    async with deps.db.session() as session:
        await store.set_guard(
            session, target="sandbox", platform="sandbox", state=GuardStatus.PAUSED, by=MANAGER, at=START
        )
        for n in range(2):
            reminders.schedule(session, deps, kind=ReminderKind.PLANNED_END, due_at=START, request_id=f"r{n}")
        await session.commit()
    posted: list[tuple[str, int]] = []

    async def quick(reminder: Reminder) -> str:
        posted.append(("B", reminder.id))
        return "1800000000.000002"

    async def slow(reminder: Reminder) -> str:
        posted.append(("A", reminder.id))
        if len(posted) == 1:
            clock.advance(seconds=reminders.LEASE.total_seconds() - 1)
        else:
            clock.advance(seconds=2)  # A's first lease is over by now
            assert await reminders.tick(deps, quick, worker_id="B") == 0
        return "1800000000.000001"

    assert await reminders.tick(deps, slow, worker_id="A") == 2
    assert [who for who, _ in posted] == ["A", "A"]
    assert len({rid for _, rid in posted}) == 2
