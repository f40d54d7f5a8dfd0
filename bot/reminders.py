"""Reminders: rows in the database are the truth; the scheduler only provides the clock.

A reminder row is `scheduled` until a tick claims it (`claimed`, with a lease), then `delivered` or
`cancelled`. Claiming is one atomic statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has a
single writer, so the conditional UPDATE is enough), so several replicas never take the same row; a
claim whose lease ran out (the claimer crashed) is claimed again by the next tick, so nothing is lost.

Posting is made idempotent by the stored Slack `ts`: right after Slack answers, the ts is written in
its own small transaction; completing the reminder (marking it delivered, counting it as unanswered,
scheduling the next one) is a second transaction. A retry of a row that already holds a ts never posts
again, it only completes. The one window left is a crash between Slack's answer and that first write:
the reminder is then posted again after the lease (at least once, never lost). Each post also carries
Slack message metadata naming the reminder, so a duplicate can be told apart in the channel.

Hook points called by the engine inside its own transactions: on_request_created, on_request_decided,
on_guard_changed. Nothing here imports Slack: the Slack layer passes `deliver`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import store
from bot.approvals import IsMember
from bot.deps import Deps
from bot.errors import ConflictError, NotFound, PermissionDenied, UsageError
from bot.models import (
    ChangeRequest,
    ChangeStatus,
    Guard,
    GuardStatus,
    ImportBatch,
    ImportRun,
    Reminder,
    RequestStatus,
)
from bot.settings import Settings, parse_duration

log = logging.getLogger(__name__)


class ReminderKind(StrEnum):
    RESTORE = "restore"  # every GUARD_REMIND_EVERY while paused
    PLANNED_END = "planned_end"  # `pause --for 8h` has run out
    APPROVAL_NUDGE = "approval_nudge"  # a request still pending after APPROVAL_NUDGE_AFTER
    APPROVAL_EXPIRY = "approval_expiry"  # a request pending at GUARD_APPROVAL_TTL expires
    CHECKLIST = "checklist"  # Intercom: manual steps still open (scheduled by bot.checklist)


class ReminderStatus(StrEnum):
    SCHEDULED = "scheduled"
    CLAIMED = "claimed"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


OPEN = (ReminderStatus.SCHEDULED, ReminderStatus.CLAIMED)
PAUSED_KINDS = (ReminderKind.RESTORE, ReminderKind.PLANNED_END)
APPROVAL_KINDS = (ReminderKind.APPROVAL_NUDGE, ReminderKind.APPROVAL_EXPIRY)
APPROVAL_NUDGE_AFTER = timedelta(minutes=30)
LEASE = timedelta(minutes=5)  # longer than a post can take, 429 retries included
TICK_SECONDS = 5.0
CLAIM_BATCH = 20
SNOOZE_DEFAULT = timedelta(hours=2)
SNOOZE_LIMITS = (timedelta(minutes=15), timedelta(days=1))
RETRY_BACKOFF = (timedelta(seconds=30), timedelta(minutes=30))

# deliver(reminder) -> the Slack ts of the message, or (channel, ts) when it went elsewhere than
# reminder.slack_channel. Given by the Slack layer.
Delivered = str | tuple[str, str]
Deliver = Callable[[Reminder], Awaitable[Delivered]]


# ---- hooks (inside the engine's transactions) ------------------------------------------------


async def on_request_created(session: AsyncSession, deps: Deps, request: ChangeRequest) -> None:
    """A pending request: nudge approvers after 30 min, expire at GUARD_APPROVAL_TTL."""
    if request.status != RequestStatus.PENDING or request.expires_at is None:
        return
    nudge_at = request.created_at + APPROVAL_NUDGE_AFTER
    if nudge_at < request.expires_at:
        schedule(session, deps, kind=ReminderKind.APPROVAL_NUDGE, due_at=nudge_at, request=request)
    schedule(session, deps, kind=ReminderKind.APPROVAL_EXPIRY, due_at=request.expires_at, request=request)


async def on_request_decided(session: AsyncSession, deps: Deps, request: ChangeRequest) -> None:
    """Approved or rejected: its approval nudge and expiry are no longer due."""
    await _cancel(
        session, col(Reminder.request_id) == request.id, col(Reminder.kind).in_(list(APPROVAL_KINDS))
    )


async def on_guard_changed(
    session: AsyncSession, deps: Deps, state: GuardStatus, request: ChangeRequest
) -> None:
    """Paused: schedule restore reminders (and the planned end of `--for`). Live: cancel them all."""
    if state == GuardStatus.LIVE:
        await cancel_all(session, target=request.target)
        return
    if state != GuardStatus.PAUSED:
        return
    now = deps.clock()
    pause_id = request.id if request.kind == "pause" else request.pause_request_id
    if not await _open_reminders(session, target=request.target, kinds=(ReminderKind.RESTORE,)):
        due = now + deps.settings.guard_remind_every
        schedule(
            session, deps, kind=ReminderKind.RESTORE, due_at=due, target=request.target, request_id=pause_id
        )
    if request.kind == "pause" and request.planned_end_at is not None:
        known = await session.exec(
            select(Reminder.id).where(
                Reminder.request_id == request.id, Reminder.kind == ReminderKind.PLANNED_END
            )
        )
        if known.first() is None:
            due = max(request.planned_end_at, now)
            schedule(session, deps, kind=ReminderKind.PLANNED_END, due_at=due, request=request)


# ---- scheduling and cancelling ---------------------------------------------------------------


def schedule(
    session: AsyncSession,
    deps: Deps,
    *,
    kind: ReminderKind,
    due_at: datetime,
    request: ChangeRequest | None = None,
    target: str | None = None,
    request_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> Reminder:
    """Add a reminder row to the caller's transaction."""
    reminder = Reminder(
        target=target or (request.target if request else deps.target),
        kind=kind,
        request_id=request_id or (request.id if request else None),
        due_at=due_at,
        status=ReminderStatus.SCHEDULED,
        slack_channel=deps.settings.guard_channel,
        created_at=deps.clock(),
        payload=payload or {},
    )
    session.add(reminder)
    return reminder


async def cancel_all(session: AsyncSession, *, target: str) -> int:
    """The target is live again: nothing it was reminded about is due any more."""
    return await _cancel(session, col(Reminder.target) == target)


async def _cancel(session: AsyncSession, *conditions: Any) -> int:
    result = await session.execute(
        sa.update(Reminder)
        .where(col(Reminder.status).in_(list(OPEN)), *conditions)
        .values(status=ReminderStatus.CANCELLED, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def _open_reminders(session: AsyncSession, *, target: str, kinds: Iterable[str]) -> list[Reminder]:
    rows = await session.exec(
        select(Reminder)
        .where(
            Reminder.target == target,
            col(Reminder.kind).in_(list(kinds)),
            col(Reminder.status).in_(list(OPEN)),
        )
        .order_by(col(Reminder.due_at))
    )
    return list(rows)


async def next_reminder(deps: Deps) -> Reminder | None:
    async with deps.db.session() as session:
        rows = await session.exec(
            select(Reminder)
            .where(Reminder.target == deps.target, Reminder.status == ReminderStatus.SCHEDULED)
            .order_by(col(Reminder.due_at))
            .limit(1)
        )
        return rows.first()


async def get_reminder(deps: Deps, reminder_id: int) -> Reminder:
    async with deps.db.session() as session:
        reminder = await session.get(Reminder, reminder_id)
    if reminder is None or reminder.target != deps.target:
        raise NotFound(f"no reminder {reminder_id} for {deps.target}")
    return reminder


# ---- claiming and delivering -----------------------------------------------------------------


def _due(now: datetime) -> Any:
    """Scheduled and due, or claimed by a worker whose lease ran out (it crashed or hung)."""
    return sa.or_(
        sa.and_(col(Reminder.status) == ReminderStatus.SCHEDULED, col(Reminder.due_at) <= now),
        sa.and_(col(Reminder.status) == ReminderStatus.CLAIMED, col(Reminder.lease_until) <= now),
    )


async def claim_due(
    deps: Deps,
    *,
    worker_id: str,
    now: datetime | None = None,
    limit: int = CLAIM_BATCH,
    lease: timedelta = LEASE,
) -> list[Reminder]:
    """Atomically take up to `limit` due reminders for `worker_id` until `now + lease`."""
    now = now or deps.clock()
    pick = select(Reminder.id).where(_due(now)).order_by(col(Reminder.due_at), col(Reminder.id)).limit(limit)
    if not deps.db.is_sqlite:
        pick = pick.with_for_update(skip_locked=True)
    async with deps.db.session() as session:
        result = await session.execute(
            sa.update(Reminder)
            .where(col(Reminder.id).in_(pick.scalar_subquery()), _due(now))
            .values(
                status=ReminderStatus.CLAIMED,
                claimed_by=worker_id,
                lease_until=now + lease,
                attempts=col(Reminder.attempts) + 1,
            )
            .returning(col(Reminder.id))
            .execution_options(synchronize_session=False)
        )
        ids = [row[0] for row in result]
        await session.commit()
        if not ids:
            return []
        rows = await session.exec(
            select(Reminder).where(col(Reminder.id).in_(ids)).order_by(col(Reminder.due_at), col(Reminder.id))
        )
        return list(rows)


async def tick(
    deps: Deps, deliver: Deliver, *, worker_id: str, now: datetime | None = None, limit: int = CLAIM_BATCH
) -> int:
    """Claim what is due and deliver it; returns how many reminders this tick delivered."""
    now = now or deps.clock()
    delivered = 0
    for reminder in await claim_due(deps, worker_id=worker_id, now=now, limit=limit):
        try:
            delivered += await _deliver_one(deps, deliver, reminder, worker_id=worker_id, now=now)
        except Exception:
            log.exception(
                "reminder %s (%s) could not be delivered; retrying later", reminder.id, reminder.kind
            )
            await _release(deps, reminder, worker_id=worker_id, now=now)
    return delivered


async def _deliver_one(
    deps: Deps, deliver: Deliver, reminder: Reminder, *, worker_id: str, now: datetime
) -> int:
    if reminder.slack_ts is None:  # a row holding a ts was posted already: only complete it
        if not await _still_due(deps, reminder, worker_id=worker_id, now=now):
            return 0
        answer = await deliver(reminder)
        channel, ts = answer if isinstance(answer, tuple) else (reminder.slack_channel, answer)
        await record_posted(deps, reminder, ts=ts, channel=channel)
    return int(await _complete(deps, reminder, worker_id=worker_id, now=now))


async def record_posted(deps: Deps, reminder: Reminder, *, ts: str, channel: str | None = None) -> None:
    """Write the Slack ts at once, in its own transaction; a retry that finds it never posts again.
    The first ts recorded wins (a second post can only come from a crash before this write)."""
    for attempt in range(3):
        try:
            async with deps.db.session() as session:
                await session.execute(
                    sa.update(Reminder)
                    .where(col(Reminder.id) == reminder.id, col(Reminder.slack_ts).is_(None))
                    .values(slack_ts=ts, slack_channel=channel or reminder.slack_channel)
                    .execution_options(synchronize_session=False)
                )
                await session.commit()
            reminder.slack_ts, reminder.slack_channel = ts, channel or reminder.slack_channel
            return
        except Exception:
            if attempt == 2:
                raise
            log.warning("recording the ts of reminder %s failed; trying again", reminder.id, exc_info=True)
            await asyncio.sleep(0.2 * 2**attempt)


async def _still_due(deps: Deps, reminder: Reminder, *, worker_id: str, now: datetime) -> bool:
    """Do we still hold the claim (renewed for one more lease), and is the reason for this reminder
    still there? If it is not, cancel it instead of posting. A claim lost while it waited behind
    slow posts in this batch is left to whoever took it. An expiry expires its request here
    (compare-and-set), before the card is changed."""
    async with deps.db.session() as session:
        renewed = await session.execute(
            sa.update(Reminder)
            .where(
                col(Reminder.id) == reminder.id,
                col(Reminder.claimed_by) == worker_id,
                col(Reminder.status) == ReminderStatus.CLAIMED,
            )
            .values(lease_until=max(now, deps.clock()) + LEASE)
            .execution_options(synchronize_session=False)
        )
        if not renewed.rowcount:  # type: ignore[attr-defined]
            await session.rollback()
            return False
        relevant = await _relevant(session, deps, reminder, now)
        if not relevant:
            await _cancel(
                session,
                col(Reminder.id) == reminder.id,
                col(Reminder.claimed_by) == worker_id,
            )
        await session.commit()
    return relevant


async def _relevant(session: AsyncSession, deps: Deps, reminder: Reminder, now: datetime) -> bool:
    if reminder.kind in PAUSED_KINDS:
        guard = await session.get(Guard, reminder.target)
        return guard is not None and guard.state != GuardStatus.LIVE
    if reminder.kind not in (*APPROVAL_KINDS, ReminderKind.CHECKLIST):
        return True
    request = await session.get(ChangeRequest, reminder.request_id) if reminder.request_id else None
    if request is None:
        return False
    if reminder.kind == ReminderKind.CHECKLIST:
        return request.status == RequestStatus.APPLYING
    if reminder.kind == ReminderKind.APPROVAL_NUDGE:
        return request.status == RequestStatus.PENDING
    if request.status == RequestStatus.PENDING and await store.compare_and_set_status(
        session,
        request_id=request.id,
        expected=(RequestStatus.PENDING,),
        status=RequestStatus.EXPIRED,
        finished_at=now,
        reason=None,
    ):
        await store.audit(
            session,
            actor="system:reminders",
            action="expired",
            target=request.target,
            at=now,
            request_id=request.id,
        )
        return True
    return request.status == RequestStatus.EXPIRED  # expired by a late click: the card still says pending


async def _complete(deps: Deps, reminder: Reminder, *, worker_id: str, now: datetime) -> bool:
    """Mark delivered and do what follows, in one transaction, only while this worker holds the claim."""
    async with deps.db.session() as session:
        won = await session.execute(
            sa.update(Reminder)
            .where(
                col(Reminder.id) == reminder.id,
                col(Reminder.claimed_by) == worker_id,
                col(Reminder.status) == ReminderStatus.CLAIMED,
            )
            .values(status=ReminderStatus.DELIVERED, delivered_at=now, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        if not won.rowcount:  # type: ignore[attr-defined]
            await session.rollback()
            return False
        if reminder.kind == ReminderKind.RESTORE:
            await _after_restore_reminder(session, deps, reminder, now)
        elif reminder.kind == ReminderKind.CHECKLIST:
            from bot.checklist import next_checklist_reminder  # checklist -> engine -> reminders

            await next_checklist_reminder(session, deps, reminder)
        await session.commit()
    reminder.status, reminder.delivered_at = ReminderStatus.DELIVERED, now
    return True


async def _after_restore_reminder(
    session: AsyncSession, deps: Deps, reminder: Reminder, now: datetime
) -> None:
    """One more unanswered reminder, and the next one, while the target stays paused."""
    await session.execute(
        sa.update(Guard)
        .where(col(Guard.target) == reminder.target, col(Guard.state) != GuardStatus.LIVE)
        .values(unanswered_reminders=col(Guard.unanswered_reminders) + 1)
        .execution_options(synchronize_session=False)
    )
    guard = await session.get(Guard, reminder.target)
    if guard is None or guard.state == GuardStatus.LIVE:
        return
    others = [
        r
        for r in await _open_reminders(session, target=reminder.target, kinds=(ReminderKind.RESTORE,))
        if r.id != reminder.id
    ]
    if not others:
        schedule(
            session,
            deps,
            kind=ReminderKind.RESTORE,
            due_at=now + deps.settings.guard_remind_every,
            target=reminder.target,
            request_id=reminder.request_id,
        )


async def _release(deps: Deps, reminder: Reminder, *, worker_id: str, now: datetime) -> None:
    """Delivery failed: back to `scheduled`, later each time (never dropped)."""
    low, high = RETRY_BACKOFF
    delay = min(low * 2 ** max(reminder.attempts - 1, 0), high)
    try:
        async with deps.db.session() as session:
            await session.execute(
                sa.update(Reminder)
                .where(
                    col(Reminder.id) == reminder.id,
                    col(Reminder.claimed_by) == worker_id,
                    col(Reminder.status) == ReminderStatus.CLAIMED,
                )
                .values(
                    status=ReminderStatus.SCHEDULED, lease_until=None, claimed_by=None, due_at=now + delay
                )
                .execution_options(synchronize_session=False)
            )
            await session.commit()
    except Exception:  # the lease still brings it back
        log.exception("could not release reminder %s", reminder.id)


# ---- answers: snooze, acknowledge, restore requested -----------------------------------------


async def authorize_answer(settings: Settings, user_id: str, *, is_member: IsMember) -> None:
    """Snooze and acknowledge are for on-call and approvers; nobody when neither is configured."""
    allowed = [*settings.guard_oncall, *settings.guard_approvers]
    if not allowed:
        raise PermissionDenied(
            "no on-call (GUARD_ONCALL) or approvers (GUARD_APPROVERS) are configured, "
            "so nobody can snooze or acknowledge reminders"
        )
    if not await is_member(user_id, allowed):
        raise PermissionDenied(
            "only on-call (GUARD_ONCALL) and approvers (GUARD_APPROVERS) can answer reminders"
        )


def snooze_duration(text: str | None) -> timedelta:
    if not text:
        return SNOOZE_DEFAULT
    try:
        duration = parse_duration(text)
    except ValueError as error:
        raise UsageError(str(error)) from None
    low, high = SNOOZE_LIMITS
    if not low <= duration <= high:
        raise UsageError(f"snooze for between {low} and {high}, not {text}")
    return duration


async def snooze(deps: Deps, reminder_id: int, *, by: str, duration: timedelta = SNOOZE_DEFAULT) -> datetime:
    """Nothing about this target until now + duration: its open reminders move there (or one is
    made). A snooze is an answer, so escalation starts over. Returns the new due time."""
    now = deps.clock()
    until = now + duration
    async with deps.db.session() as session:
        reminder = await _answerable(session, deps, reminder_id)
        await session.execute(  # only rows still waiting: one being posted right now is not moved
            sa.update(Reminder)
            .where(
                col(Reminder.target) == reminder.target,
                col(Reminder.kind).in_(list(PAUSED_KINDS)),
                col(Reminder.status) == ReminderStatus.SCHEDULED,
                col(Reminder.due_at) < until,
            )
            .values(due_at=until)
            .execution_options(synchronize_session=False)
        )
        waiting = await _open_reminders(session, target=reminder.target, kinds=(ReminderKind.RESTORE,))
        if not [r for r in waiting if r.status == ReminderStatus.SCHEDULED]:
            schedule(
                session,
                deps,
                kind=ReminderKind.RESTORE,
                due_at=until,
                target=reminder.target,
                request_id=reminder.request_id,
            )
        await _answered(session, deps, reminder, by=by, action="reminder_snoozed", until=until.isoformat())
        await session.commit()
    return until


async def acknowledge(deps: Deps, reminder_id: int, *, by: str) -> Reminder:
    """The answer "still importing": the pause is known and wanted; escalation starts over."""
    async with deps.db.session() as session:
        reminder = await _answerable(session, deps, reminder_id)
        await _answered(session, deps, reminder, by=by, action="reminder_acknowledged")
        await session.commit()
    return reminder


async def note_restore_requested(deps: Deps, reminder_id: int, *, by: str, request_id: str) -> None:
    """Someone acted on the reminder by asking for a restore: that is an answer too."""
    async with deps.db.session() as session:
        reminder = await session.get(Reminder, reminder_id)
        if reminder is None:
            return
        await _answered(
            session, deps, reminder, by=by, action="reminder_restore_requested", request_id=request_id
        )
        await session.commit()


async def _answerable(session: AsyncSession, deps: Deps, reminder_id: int) -> Reminder:
    reminder = await session.get(Reminder, reminder_id)
    if reminder is None or reminder.target != deps.target:
        raise NotFound(f"no reminder {reminder_id} for {deps.target}")
    guard = await session.get(Guard, reminder.target)
    if guard is None or guard.state == GuardStatus.LIVE:
        raise ConflictError(f"{reminder.target} is live again: there is nothing to remind about")
    return reminder


async def _answered(
    session: AsyncSession, deps: Deps, reminder: Reminder, *, by: str, action: str, **detail: Any
) -> None:
    await session.execute(
        sa.update(Guard)
        .where(col(Guard.target) == reminder.target)
        .values(unanswered_reminders=0)
        .execution_options(synchronize_session=False)
    )
    reminder.payload = {**reminder.payload, "answered": action, "answered_by": by, **detail}
    session.add(reminder)
    await store.audit(
        session,
        actor=by,
        action=action,
        target=reminder.target,
        at=deps.clock(),
        request_id=reminder.request_id,
        detail={"reminder_id": reminder.id, **detail},
    )


# ---- what a reminder says (Slack-free; rendered by bot/blocks/reminders.py) -------------------


@dataclass
class RunView:
    run: ImportRun
    last_batch: ImportBatch | None
    batches: int = 0
    ok: int = 0
    failed: int = 0


@dataclass
class ReminderView:
    reminder: Reminder
    now: datetime
    guard: Guard | None
    pause: ChangeRequest | None = None
    request: ChangeRequest | None = None  # approval kinds: the request waiting
    open_restore: ChangeRequest | None = None
    off: dict[str, int] = field(default_factory=dict)  # done changes of the pause, by action
    runs: list[RunView] = field(default_factory=list)
    oncall: list[str] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)
    unanswered: int = 0
    escalate_after: int = 2

    @property
    def escalated(self) -> bool:
        """After GUARD_ESCALATE_AFTER unanswered restore reminders the approvers hear too."""
        return self.reminder.kind in PAUSED_KINDS and self.unanswered >= self.escalate_after

    @property
    def mentions(self) -> list[str]:
        if self.reminder.kind == ReminderKind.APPROVAL_NUDGE:
            return list(self.approvers)
        if self.reminder.kind == ReminderKind.APPROVAL_EXPIRY:
            return []
        extra = [a for a in self.approvers if a not in self.oncall] if self.escalated else []
        return [*self.oncall, *extra]

    @property
    def paused_for(self) -> timedelta | None:
        return self.now - self.guard.since if self.guard and self.guard.state != GuardStatus.LIVE else None


async def reminder_view(deps: Deps, reminder: Reminder, *, now: datetime | None = None) -> ReminderView:
    """Everything a reminder message says, read fresh at delivery time."""
    settings = deps.settings
    async with deps.db.session() as session:
        guard = await session.get(Guard, reminder.target)
        view = ReminderView(
            reminder=reminder,
            now=now or deps.clock(),
            guard=guard,
            oncall=list(settings.guard_oncall),
            approvers=list(settings.guard_approvers),
            unanswered=guard.unanswered_reminders if guard else 0,
            escalate_after=settings.guard_escalate_after,
        )
        if reminder.kind in APPROVAL_KINDS and reminder.request_id:
            view.request = await session.get(ChangeRequest, reminder.request_id)
            return view
        view.pause = await store.last_pause(session, target=reminder.target)
        if view.pause is not None:
            changes = await store.request_changes(session, request_id=view.pause.id)
            view.off = store.count_by(c.action for c in changes if c.status == ChangeStatus.DONE)
        restores = [
            r for r in await store.open_requests(session, target=reminder.target) if r.kind == "restore"
        ]
        view.open_restore = restores[0] if restores else None
        view.runs = await active_runs(session, target=reminder.target)
    return view


async def active_runs(session: AsyncSession, *, target: str) -> list[RunView]:
    runs = await session.exec(
        select(ImportRun)
        .where(ImportRun.target == target, ImportRun.status == "running")
        .order_by(col(ImportRun.created_at))
    )
    views = []
    for run in runs:
        last = await session.exec(
            select(ImportBatch)
            .where(ImportBatch.run_id == run.id)
            .order_by(col(ImportBatch.batch).desc())
            .limit(1)
        )
        totals = (
            await session.execute(
                sa.select(
                    sa.func.count(col(ImportBatch.id)),
                    sa.func.coalesce(sa.func.sum(col(ImportBatch.ok)), 0),
                    sa.func.coalesce(sa.func.sum(col(ImportBatch.failed)), 0),
                ).where(col(ImportBatch.run_id) == run.id)
            )
        ).one()
        views.append(RunView(run, last.first(), int(totals[0]), int(totals[1]), int(totals[2])))
    return views


# ---- the clock -------------------------------------------------------------------------------


def worker_name() -> str:
    """Unique per process: host, pid and a random suffix (a restarted pid is another worker)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


def start_scheduler(
    deps: Deps, deliver: Deliver, *, worker_id: str | None = None, interval: float = TICK_SECONDS
) -> AsyncIOScheduler:
    """APScheduler is only the clock: one interval job that ticks; the rows say what is due."""
    worker = worker_id or worker_name()
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        _tick_job,
        "interval",
        seconds=interval,
        args=(deps, deliver, worker),
        id="reminders",
        name="reminders tick",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    log.info("reminder clock started (worker %s, every %ss)", worker, interval)
    return scheduler


async def _tick_job(deps: Deps, deliver: Deliver, worker_id: str) -> None:
    try:
        while await tick(deps, deliver, worker_id=worker_id) >= CLAIM_BATCH:
            pass  # a backlog (after downtime) drains without waiting for the next tick
    except Exception:  # the database may be away for a moment; the next tick tries again
        log.exception("reminder tick failed")
