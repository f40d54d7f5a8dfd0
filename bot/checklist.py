"""Manual steps (Intercom): people do the clicks, the bot keeps the list and checks their work.

A pause or restore on a platform whose API cannot change an automation is planned as MANUAL
changes. The engine skips them during apply and keeps the request `applying` (so the guard stays
`pausing`/`restoring`) while any is `planned`. Each person's confirmation comes here: the bot reads
the automation again (Intercom: exports the workflow) and compares its state with the change's
`after`. A match is `verified` and done; a mismatch is recorded and the step stays open; where the
platform cannot show the state (Intercom plans that refuse export) the person's word is recorded as
`unverifiable` and counts. When nothing is left, `engine.finalize` settles request and guard.

Nagging: a `checklist` Reminder row (one open per request) is kept while steps are open; the
reminder clock (bot/reminders.py) delivers it and may call `next_checklist_reminder` afterwards.
Where the checklist message lives is recorded as a `checklist_posted` audit event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.base import Action, AutomationGone
from adapters.intercom import DRAFT, LIVE, PAUSED, PLAN_RESTRICTED
from bot import engine, store
from bot.approvals import IsMember
from bot.deps import Deps
from bot.errors import ConflictError, NotFound, PermissionDenied
from bot.locks import apply_lock
from bot.models import (
    AuditEvent,
    Change,
    ChangeRequest,
    ChangeStatus,
    Reminder,
    RequestStatus,
    TrackedWorkflow,
)
from bot.settings import Settings

T = TypeVar("T")

VERIFIED, MISMATCH, UNVERIFIABLE = "verified", "mismatch", "unverifiable"
REMINDER_KIND = "checklist"
REMINDER_OPEN = ("scheduled", "claimed")
REMINDER_CAP = timedelta(hours=1)  # an open checklist blocks the import: nag at least hourly
POSTED = "checklist_posted"
LOCK_WAIT = 15.0  # seconds a confirmation waits for another confirmation (or an apply) to finish
CLOSED = (ChangeStatus.DONE, ChangeStatus.SKIPPED)


@dataclass(frozen=True)
class Checklist:
    """A request's manual steps as people see them."""

    request: ChangeRequest
    steps: list[Change]
    titles: dict[str, str] = field(default_factory=dict)  # automation id -> title people gave or Intercom had
    guard: str = "live"  # the target's guard state now
    changes: list[Change] = field(default_factory=list)  # every change of the request (the card counts them)

    @property
    def done(self) -> int:
        return sum(1 for step in self.steps if step.status in CLOSED)

    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def open(self) -> int:
        return self.total - self.done

    def title(self, step: Change) -> str:
        """The workflow's name; a plan-restricted export only knows the id, tracking may know more."""
        return self.titles.get(step.automation_id) or step.name


@dataclass(frozen=True)
class StepResult:
    """What one confirmation found and recorded."""

    change: Change
    request: ChangeRequest
    verification: str | None  # verified | mismatch | unverifiable | None (deleted, or already done)
    expected: str  # the state the step asks for: paused (pause) or live (restore)
    seen: str | None = None  # the state Intercom reported (None: unreadable or deleted)
    already: bool = False  # ticked before this click: nothing was recorded
    outcome: engine.Outcome | None = None  # set when this step closed the checklist
    remaining: int = 0


def is_manual(change: Change) -> bool:
    return change.action == Action.MANUAL


def needs_checklist(outcome: engine.Outcome) -> bool:
    """An applying request with manual steps still open waits for people."""
    return outcome.request.status == RequestStatus.APPLYING and any(
        is_manual(c) and c.status == ChangeStatus.PLANNED for c in outcome.changes
    )


def expected_state(kind: str, change: Change) -> str:
    """What the step asks for. A plan-restricted workflow was planned without a state: a pause
    asks for it paused, a restore for it live (it was on the pause checklist because it could run)."""
    state = change.after.get("state")
    if state in (LIVE, PAUSED):
        return str(state)
    return PAUSED if kind == "pause" else LIVE


def reached(kind: str, expected: str, seen: str | None) -> bool:
    """A pause needs the workflow not running (paused, or back in draft); a restore needs it as
    the snapshot had it."""
    if kind == "pause":
        return seen in (PAUSED, DRAFT)
    return seen == expected


# ---- reading ----------------------------------------------------------------------------------


async def titles(session: AsyncSession, *, target: str) -> dict[str, str]:
    rows = await session.exec(select(TrackedWorkflow).where(TrackedWorkflow.target == target))
    return {row.workflow_id: row.title for row in rows if row.title}


async def load(deps: Deps, request_id: str) -> Checklist:
    async with deps.db.session() as session:
        request = await store.get_request(session, request_id=request_id)
        changes = await store.request_changes(session, request_id=request_id)
        names = await titles(session, target=request.target)
        guard = await store.get_guard(session, target=request.target, platform=deps.platform.name)
        await session.commit()
    return Checklist(request, [c for c in changes if is_manual(c)], names, guard.state, changes)


async def location(deps: Deps, request_id: str) -> dict[str, Any] | None:
    """Where the checklist was posted: {"channel", "pages": [ts, ...], "thread_ts"}."""
    async with deps.db.session() as session:
        rows = await session.exec(
            select(AuditEvent)
            .where(AuditEvent.request_id == request_id, AuditEvent.action == POSTED)
            .order_by(col(AuditEvent.id).desc())
            .limit(1)
        )
        event = rows.first()
    return dict(event.detail) if event is not None else None


async def record_posted(
    deps: Deps, request: ChangeRequest, *, channel: str, pages: Sequence[str], thread_ts: str | None
) -> None:
    """The checklist is in Slack: remember where, and make sure someone is nagged about it."""
    async with deps.db.session() as session:
        await store.audit(
            session,
            actor=request.decided_by or "system:checklist",
            action=POSTED,
            target=request.target,
            at=deps.clock(),
            request_id=request.id,
            detail={"channel": channel, "pages": list(pages), "thread_ts": thread_ts},
        )
        await session.flush()
        await schedule_reminder(session, deps, request)
        await session.commit()


# ---- confirming a step ------------------------------------------------------------------------


async def confirm_step(
    deps: Deps, change_id: int, actor: str, *, is_member: IsMember | None = None
) -> StepResult:
    """A person says they did one manual step. Re-read the automation, record what it shows, and
    finalize the request when this was the last open step.

    `is_member` (Slack) limits who may vouch for a step the bot cannot verify to the requester,
    the approver who decided, GUARD_APPROVERS and GUARD_ONCALL; without it (CLI) anyone may.
    """
    change, request = await _load_step(deps, change_id)
    expected = expected_state(request.kind, change)
    if change.status in CLOSED:
        return StepResult(change, request, change.verification, expected, already=True)
    try:
        live = await deps.platform.get_automation(change.kind, change.automation_id)
    except AutomationGone:
        live = None
    seen = live.definition.get("state") if live is not None else None
    readable = live is not None and live.definition.get("export") != PLAN_RESTRICTED and seen is not None
    vouching = live is not None and not readable
    if vouching and is_member is not None and not await may_vouch(deps.settings, request, actor, is_member):
        raise PermissionDenied(
            f"{deps.platform.display_name} cannot show this workflow's state, so only the requester, "
            "the approvers and on-call can vouch for it"
        )
    return await _with_lock(deps, lambda: _record(deps, change_id, actor, expected, live, seen, readable))


async def may_vouch(settings: Settings, request: ChangeRequest, actor: str, is_member: IsMember) -> bool:
    if actor in (request.requester, request.decided_by):
        return True
    allowed = [*settings.guard_approvers, *settings.guard_oncall]
    return bool(allowed) and await is_member(actor, allowed)


async def _load_step(deps: Deps, change_id: int) -> tuple[Change, ChangeRequest]:
    async with deps.db.session() as session:
        change = await session.get(Change, change_id)
        if change is None:
            raise NotFound(f"no checklist step {change_id}")
        request = await store.get_request(session, request_id=change.request_id)
    if request.target != deps.target:
        raise NotFound(f"step {change_id} belongs to {request.target}, not {deps.target}")
    if not is_manual(change):
        raise ConflictError(f"{change.name} is changed through the API, not by hand: nothing to tick")
    if request.status != RequestStatus.APPLYING and change.status not in CLOSED:
        raise ConflictError(_closed(request))
    return change, request


def _closed(request: ChangeRequest) -> str:
    return f"the checklist of {request.kind} {request.id} is closed: the request is {request.status}"


async def _record(
    deps: Deps, change_id: int, actor: str, expected: str, live: Any, seen: Any, readable: bool
) -> StepResult:
    """Under the target's lock: record the step and, if it was the last, finalize exactly once."""
    now = deps.clock()
    async with deps.db.session() as session:
        change = await session.get(Change, change_id)
        request = await store.get_request(session, request_id=change.request_id) if change else None
        assert change is not None and request is not None
        if change.status in CLOSED:  # another click got there while we were reading Intercom
            return StepResult(change, request, change.verification, expected, seen=seen, already=True)
        if request.status != RequestStatus.APPLYING:
            raise ConflictError(_closed(request))
        word = "paused" if request.kind == "pause" else "set live"
        if live is None:
            verification, status, note = None, ChangeStatus.SKIPPED, "deleted in Intercom"
        elif not readable:
            verification, status = UNVERIFIABLE, ChangeStatus.DONE
            note = f"{word} by hand; not verifiable: the plan refuses workflow export"
        elif reached(request.kind, expected, seen):
            verification, status, note = VERIFIED, ChangeStatus.DONE, None
        else:
            verification, status = MISMATCH, ChangeStatus.PLANNED
            note = f"marked {word}, Intercom says {seen}"
        await store.update_change(
            session,
            change_id=change_id,
            status=status,
            note=note,
            verification=verification,
            confirmed_by=actor,
            confirmed_at=now,
            updated_at=now,
        )
        await store.audit(
            session,
            actor=actor,
            action=f"manual_step_{verification or 'gone'}",
            target=request.target,
            at=now,
            request_id=request.id,
            detail={"change_id": change_id, "automation_id": change.automation_id, "seen": seen},
        )
        await session.commit()
        await session.refresh(change)
        remaining = await _open_steps(session, request.id)
        if remaining:
            await schedule_reminder(session, deps, request)
            await session.commit()
    result = StepResult(change, request, verification, expected, seen=seen, remaining=remaining)
    if remaining:
        return result
    outcome = await engine.finalize(deps, request.id, actor=actor)
    async with deps.db.session() as session:
        await cancel_reminders(session, request_id=request.id)
        await session.commit()
    return StepResult(change, outcome.request, verification, expected, seen=seen, outcome=outcome)


async def _open_steps(session: AsyncSession, request_id: str) -> int:
    rows = await session.exec(
        select(sa.func.count())
        .select_from(Change)
        .where(
            Change.request_id == request_id,
            col(Change.status).in_([ChangeStatus.PLANNED, ChangeStatus.IN_FLIGHT]),
        )
    )
    return int(rows.one())


async def _with_lock(deps: Deps, work: Callable[[], Awaitable[T]]) -> T:
    """The target's apply lock, waiting briefly for it: two people ticking the last two steps at
    once must finalize the request once, and never while an apply runs."""
    deadline, delay = time.monotonic() + LOCK_WAIT, 0.02
    while True:
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(apply_lock(deps.db, deps.target))
        except ConflictError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            continue
        async with stack:
            return await work()


# ---- reminders (data only: bot/reminders.py delivers them) ------------------------------------


def reminder_interval(settings: Settings) -> timedelta:
    return min(settings.guard_remind_every, REMINDER_CAP)


async def schedule_reminder(session: AsyncSession, deps: Deps, request: ChangeRequest) -> Reminder | None:
    """Keep exactly one open `checklist` reminder for a request with open steps (idempotent).
    Its payload says what is open and where the checklist is."""
    known = await session.exec(
        select(Reminder).where(
            Reminder.request_id == request.id,
            Reminder.kind == REMINDER_KIND,
            col(Reminder.status).in_(REMINDER_OPEN),
        )
    )
    if known.first() is not None:
        return None
    changes = [c for c in await store.request_changes(session, request_id=request.id) if is_manual(c)]
    still = [c for c in changes if c.status not in CLOSED]
    if not still:
        return None
    posted = (
        await session.exec(
            select(AuditEvent)
            .where(AuditEvent.request_id == request.id, AuditEvent.action == POSTED)
            .order_by(col(AuditEvent.id).desc())
            .limit(1)
        )
    ).first()
    now = deps.clock()
    reminder = Reminder(
        target=request.target,
        kind=REMINDER_KIND,
        request_id=request.id,
        due_at=now + reminder_interval(deps.settings),
        slack_channel=deps.settings.guard_channel,
        created_at=now,
        payload={
            "request_kind": request.kind,
            "open": len(still),
            "total": len(changes),
            "open_names": [c.name for c in still[:10]],
            "checklist": dict(posted.detail) if posted else None,
            "text": f"{len(still)} of {len(changes)} manual step(s) of {request.kind} {request.id} open",
        },
    )
    session.add(reminder)
    return reminder


async def next_checklist_reminder(session: AsyncSession, deps: Deps, reminder: Reminder) -> Reminder | None:
    """For the reminder clock, after delivering a `checklist` reminder: the next one, while the
    request is still applying with open steps (None otherwise)."""
    if reminder.request_id is None:
        return None
    request = await session.get(ChangeRequest, reminder.request_id)
    if request is None or request.status != RequestStatus.APPLYING:
        return None
    return await schedule_reminder(session, deps, request)


async def cancel_reminders(session: AsyncSession, *, request_id: str) -> int:
    result = await session.execute(
        sa.update(Reminder)
        .where(
            col(Reminder.request_id) == request_id,
            col(Reminder.kind) == REMINDER_KIND,
            col(Reminder.status).in_(REMINDER_OPEN),
        )
        .values(status="cancelled", lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
