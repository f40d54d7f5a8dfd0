"""The journaled apply: every remote change is journaled `in_flight` before the call and
`done`/`failed` after it, each in its own committed transaction, so a crash anywhere leaves a journal
that `resume_all` can finish: an `in_flight` change is re-read and counted done if the platform
already holds its `after`, sent again if the platform still holds its `before`, and flagged as a
conflict otherwise. One apply runs at a time per target (bot.locks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.base import Action, Automation, AutomationGone, PlatformError
from bot import reminders, store
from bot.deps import Deps
from bot.errors import ConflictError, NotFound
from bot.locks import apply_lock
from bot.models import Change, ChangeRequest, ChangeStatus, GuardStatus, RequestStatus

log = logging.getLogger(__name__)

APPLY_CONCURRENCY = 8
RESUMABLE = (RequestStatus.APPROVED, RequestStatus.APPLYING)


@dataclass
class Progress:
    request_id: str
    total: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return sum(n for status, n in self.counts.items() if status not in ("planned", "in_flight"))


ProgressCallback = Callable[[Progress], Awaitable[None]]


@dataclass
class Outcome:
    request: ChangeRequest
    changes: list[Change]
    differences: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return store.count_by(change.status for change in self.changes)


# ---- apply ------------------------------------------------------------------------------------


async def apply(
    deps: Deps, request_id: str, *, actor: str, on_progress: ProgressCallback | None = None
) -> Outcome:
    """Apply an approved (or resume an applying) request under the target's lock."""
    async with apply_lock(deps.db, deps.target):
        request, changes = await _load(deps, request_id)
        if request.status not in RESUMABLE:
            raise ConflictError(f"request {request_id} is {request.status}, not approved")
        if request.status == RequestStatus.APPROVED:
            stale = await _stale_reason(deps, changes)
            if stale:
                return await _mark_stale(deps, request, stale, actor)
            await _start(deps, request, actor)
        await _run_journal(deps, request, changes, on_progress)
        return await finalize(deps, request_id, actor=actor)


async def resume_all(deps: Deps, *, actor: str) -> list[Outcome]:
    """Finish what a crash or restart interrupted: every approved or applying request of the target."""
    async with deps.db.session() as session:
        requests = await store.requests_in(session, statuses=RESUMABLE, target=deps.target)
    return [await apply(deps, request.id, actor=actor) for request in requests]


async def retry_failed(
    deps: Deps, request_id: str, *, actor: str, on_progress: ProgressCallback | None = None
) -> Outcome:
    """Send the failed changes of a finished request again."""
    async with deps.db.session() as session:
        request = await store.get_request(session, request_id=request_id)
        changes = await store.request_changes(session, request_id=request_id)
        failed = [c for c in changes if c.status == ChangeStatus.FAILED]
        if not failed:
            raise ConflictError(f"request {request_id} has no failed changes to retry")
        won = await store.compare_and_set_status(
            session,
            request_id=request_id,
            expected=(RequestStatus.PARTIALLY_APPLIED, RequestStatus.FAILED),
            status=RequestStatus.APPLYING,
        )
        if not won:
            raise ConflictError(
                f"request {request_id} is {request.status}; only a finished request is retried"
            )
        for change in failed:
            await store.update_change(session, change_id=_id(change), status=ChangeStatus.PLANNED)
        await store.audit(
            session,
            actor=actor,
            action="retry",
            target=request.target,
            at=deps.clock(),
            request_id=request_id,
            detail={"changes": len(failed)},
        )
        await session.commit()
    return await apply(deps, request_id, actor=actor, on_progress=on_progress)


async def _load(deps: Deps, request_id: str) -> tuple[ChangeRequest, list[Change]]:
    async with deps.db.session() as session:
        request = await store.get_request(session, request_id=request_id)
        if request.target != deps.target:
            raise NotFound(f"request {request_id} belongs to {request.target}, not {deps.target}")
        return request, await store.request_changes(session, request_id=request_id)


async def _stale_reason(deps: Deps, changes: Sequence[Change]) -> str | None:
    """A plan is applied only to the automations it was made from."""
    pending = [c for c in changes if c.status == ChangeStatus.PLANNED and c.action != Action.MANUAL]
    if not pending:
        return None
    live = {a.key: a for a in await deps.platform.list_automations()}
    reasons = []
    for change in pending:
        current = live.get((change.kind, change.automation_id))
        if current is None:
            reasons.append(f"{change.name} was deleted")
        elif current.definition != change.before:
            reasons.append(f"{change.name} was edited")
    if not reasons:
        return None
    more = f" and {len(reasons) - 3} more" if len(reasons) > 3 else ""
    return "changed since the snapshot: " + "; ".join(reasons[:3]) + more


async def _mark_stale(deps: Deps, request: ChangeRequest, reason: str, actor: str) -> Outcome:
    now = deps.clock()
    async with deps.db.session() as session:
        await store.compare_and_set_status(
            session,
            request_id=request.id,
            expected=(RequestStatus.APPROVED,),
            status=RequestStatus.STALE,
            reason=reason,
            finished_at=now,
        )
        await store.audit(
            session,
            actor=actor,
            action="stale",
            target=request.target,
            at=now,
            request_id=request.id,
            detail={"reason": reason},
        )
        await session.commit()
    return Outcome(*(await _load(deps, request.id)))


async def _start(deps: Deps, request: ChangeRequest, actor: str) -> None:
    now = deps.clock()
    state = GuardStatus.PAUSING if request.kind == "pause" else GuardStatus.RESTORING
    async with deps.db.session() as session:
        won = await store.compare_and_set_status(
            session, request_id=request.id, expected=(RequestStatus.APPROVED,), status=RequestStatus.APPLYING
        )
        if not won:
            raise ConflictError(f"request {request.id} is already being applied")
        await store.set_guard(
            session,
            target=deps.target,
            platform=deps.platform.name,
            state=state,
            by=request.decided_by or actor,
            at=now,
            pause_request_id=request.id if request.kind == "pause" else None,
        )
        await store.audit(
            session, actor=actor, action="apply_started", target=deps.target, at=now, request_id=request.id
        )
        await session.commit()


async def _run_journal(
    deps: Deps, request: ChangeRequest, changes: Sequence[Change], on_progress: ProgressCallback | None
) -> None:
    journal = _Journal(deps, Progress(request.id, len(changes), store.count_by(c.status for c in changes)))
    todo = [
        c
        for c in changes
        if c.status in (ChangeStatus.PLANNED, ChangeStatus.IN_FLIGHT) and c.action != Action.MANUAL
    ]
    slots = asyncio.Semaphore(APPLY_CONCURRENCY)

    async def one(change: Change) -> None:
        async with slots:
            await _apply_one(deps, journal, change)
            if on_progress is not None:
                await on_progress(journal.progress)

    # A TaskGroup, not gather: an unexpected error (the database gone) cancels the other changes
    # before the apply lock is released, so nothing keeps writing unjournaled.
    async with asyncio.TaskGroup() as group:
        for change in todo:
            group.create_task(one(change))


class _Journal:
    """Serialises journal writes: SQLite has one writer, and one ordered stream is easy to audit."""

    def __init__(self, deps: Deps, progress: Progress):
        self.deps = deps
        self.progress = progress
        self.lock = asyncio.Lock()

    async def record(self, change: Change, status: str, note: str | None = None, bump: bool = False) -> None:
        async with self.lock, self.deps.db.session() as session:
            fields: dict[str, Any] = {"status": status, "note": note}
            if bump:
                change.attempts += 1
                fields["attempts"] = change.attempts
            await store.update_change(session, change_id=_id(change), **fields)
            await session.commit()
        counts = self.progress.counts
        counts[change.status] = counts.get(change.status, 0) - 1
        counts[status] = counts.get(status, 0) + 1
        change.status = status
        change.note = note

    async def normalised(self, change: Change, definition: dict[str, Any]) -> None:
        """The platform stores what we sent in its own form: remember that form, so that restore
        recognises the automation as untouched since."""
        async with self.lock, self.deps.db.session() as session:
            await store.update_change(session, change_id=_id(change), after=definition)
            await session.commit()
        change.after = definition


async def _apply_one(deps: Deps, journal: _Journal, change: Change) -> None:
    if change.status == ChangeStatus.IN_FLIGHT:
        verdict = await _settle_in_flight(deps, change)
        if verdict is not None:
            await journal.record(change, *verdict)
            return
    await journal.record(change, ChangeStatus.IN_FLIGHT, bump=True)
    desired = _automation(change, change.after)
    try:
        written = await deps.platform.write(desired)
    except AutomationGone:
        await journal.record(change, ChangeStatus.FAILED, "deleted on the platform")
        return
    except PlatformError as error:
        await journal.record(change, ChangeStatus.FAILED, str(error))
        return
    if written.definition != change.after:
        await journal.normalised(change, written.definition)
    await journal.record(change, ChangeStatus.DONE)


async def _settle_in_flight(deps: Deps, change: Change) -> tuple[str, str | None] | None:
    """After a crash: did the interrupted call land? None means send it (again)."""
    try:
        live = await deps.platform.get_automation(change.kind, change.automation_id)
    except AutomationGone:
        return ChangeStatus.FAILED, "deleted on the platform"
    except PlatformError as error:
        return ChangeStatus.FAILED, f"could not re-read after a restart: {error}"
    if live.definition == change.after:
        return ChangeStatus.DONE, None
    if live.definition == change.before:
        return None
    return ChangeStatus.CONFLICT, "edited by someone while the change was in flight"


def _id(change: Change) -> int:
    assert change.id is not None, "a journaled change has been stored"
    return change.id


def _automation(change: Change, definition: dict[str, Any]) -> Automation:
    enabled = definition.get("active") if isinstance(definition.get("active"), bool) else None
    return Automation(
        kind=change.kind,
        id=change.automation_id,
        name=change.name,
        enabled=enabled,
        definition=definition,
        url=change.url,
    )


# ---- finishing --------------------------------------------------------------------------------


async def finalize(deps: Deps, request_id: str, *, actor: str) -> Outcome:
    """Settle the request's status and the guard's state from the journal. Manual steps still
    open keep the request `applying` (a person has work to do)."""
    request, changes = await _load(deps, request_id)
    counts = store.count_by(c.status for c in changes)
    if counts.get(ChangeStatus.PLANNED, 0) or counts.get(ChangeStatus.IN_FLIGHT, 0):
        return Outcome(request, changes)
    done, failed = counts.get(ChangeStatus.DONE, 0), counts.get(ChangeStatus.FAILED, 0)
    status = RequestStatus.APPLIED
    if failed:
        status = RequestStatus.PARTIALLY_APPLIED if done else RequestStatus.FAILED
    differences = await verify(deps, request, changes) if request.kind == "restore" else []
    now = deps.clock()
    async with deps.db.session() as session:
        await store.compare_and_set_status(
            session, request_id=request_id, expected=(RequestStatus.APPLYING,), status=status, finished_at=now
        )
        guard_state = _guard_after(request.kind, status)
        await store.set_guard(
            session,
            target=deps.target,
            platform=deps.platform.name,
            state=guard_state,
            by=request.decided_by or actor,
            at=now,
        )
        await store.audit(
            session,
            actor=actor,
            action=f"{request.kind}_{status}",
            target=deps.target,
            at=now,
            request_id=request_id,
            detail={"counts": counts, "differences": differences[:20]},
        )
        current = await store.get_request(session, request_id=request_id)
        await session.refresh(current)
        await reminders.on_guard_changed(session, deps, guard_state, current)
        await session.commit()
    request, changes = await _load(deps, request_id)
    return Outcome(request, changes, differences)


def _guard_after(kind: str, status: str) -> GuardStatus:
    if kind == "pause":
        return GuardStatus.LIVE if status == RequestStatus.FAILED else GuardStatus.PAUSED
    return GuardStatus.PAUSED if status != RequestStatus.APPLIED else GuardStatus.LIVE


async def verify(deps: Deps, request: ChangeRequest, changes: Sequence[Change]) -> list[str]:
    """After a restore: compare the platform with the snapshot for every automation we touched."""
    live = {a.key: a for a in await deps.platform.list_automations()}
    async with deps.db.session() as session:
        snapshot = {
            a.key: a for a in await store.snapshot_automations(session, snapshot_id=request.snapshot_id)
        }
    differences = []
    for change in changes:
        key = (change.kind, change.automation_id)
        was, now = snapshot.get(key), live.get(key)
        if was is None:
            continue
        if now is None:
            differences.append(f"{change.name}: deleted since the snapshot")
        elif now.definition != was.definition:
            why = change.note or change.status
            differences.append(f"{change.name}: differs from the snapshot ({why})")
    return differences
