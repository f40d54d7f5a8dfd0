"""The guard engine: snapshot, plan and store requests, decide them. Knows nothing of Slack.

Applying a decided request (journaled, resumable, verified) lives in bot.journal; its entry points
are re-exported here so that callers speak to one engine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adapters.base import Action, Automation
from bot import reminders, store
from bot.deps import Deps
from bot.errors import ConflictError, PermissionDenied
from bot.journal import (
    RESUMABLE,
    Outcome,
    Progress,
    ProgressCallback,
    apply,
    finalize,
    resume_all,
    retry_failed,
    verify,
)
from bot.models import Change, ChangeRequest, ChangeStatus, GuardStatus, RequestStatus, Snapshot
from bot.planning import DoneChange, PauseOptions, PlannedChange, RestorePlan, plan_pause, plan_restore

__all__ = [  # the journal's entry points, re-exported
    "Outcome",
    "Progress",
    "ProgressCallback",
    "apply",
    "finalize",
    "resume_all",
    "retry_failed",
    "verify",
]

DECIDABLE = (RequestStatus.PENDING,)

log = logging.getLogger(__name__)


# ---- snapshot and requests -------------------------------------------------------------------


async def take_snapshot(deps: Deps, *, actor: str) -> tuple[Snapshot, list[Automation]]:
    """Read every automation and store it; the snapshot is written before anything changes."""
    automations = await deps.platform.list_automations()
    return await save_snapshot(deps, automations, actor=actor), automations


async def save_snapshot(deps: Deps, automations: Sequence[Automation], *, actor: str) -> Snapshot:
    async with deps.db.session() as session:
        snapshot = await store.save_snapshot(
            session,
            target=deps.target,
            platform=deps.platform.name,
            automations=automations,
            taken_by=actor,
            at=deps.clock(),
        )
        await store.audit(
            session,
            actor=actor,
            action="snapshot",
            target=deps.target,
            at=deps.clock(),
            detail={"snapshot_id": snapshot.id, "automations": len(automations)},
        )
        await session.commit()
    return snapshot


async def preview_pause(deps: Deps, options: PauseOptions) -> tuple[list[Automation], list[PlannedChange]]:
    """The plan a pause would make now, without storing anything (CLI without --yes)."""
    await _refuse_if_guarded(deps)
    automations = await deps.platform.list_automations()
    return automations, plan_pause(deps.platform, automations, options)


async def request_pause(
    deps: Deps,
    options: PauseOptions,
    *,
    actor: str,
    approved: bool = False,
    planned_end_at: datetime | None = None,
) -> Outcome:
    """Snapshot, plan and store a pause request (`pending`, or `approved` for break-glass CLI)."""
    await _refuse_if_guarded(deps)
    automations = await deps.platform.list_automations()
    planned = plan_pause(deps.platform, automations, options)  # bad options fail here, storing nothing
    snapshot = await save_snapshot(deps, automations, actor=actor)
    options_json = {"mode": options.mode, "only": sorted(options.only), "keep": sorted(options.keep)}
    return await _store_request(
        deps,
        kind="pause",
        snapshot_id=snapshot.id,
        planned=planned,
        actor=actor,
        approved=approved,
        mode=options.mode,
        options=options_json,
        planned_end_at=planned_end_at,
    )


async def request_restore(deps: Deps, *, actor: str, force: bool = False, approved: bool = False) -> Outcome:
    """Plan the revert of the pause the guard holds: conflicts and deletions are found now."""
    pause, done = await _pause_to_restore(deps)
    planned = await preview_restore(deps, pause, done, force=force)
    return await _store_request(
        deps,
        kind="restore",
        snapshot_id=pause.snapshot_id,
        planned=planned.changes,
        actor=actor,
        approved=approved,
        mode=None,
        options={"force": force, "created_during_pause": planned.created_during_pause},
        pause_request_id=pause.id,
    )


async def preview_restore(
    deps: Deps, pause: ChangeRequest, done: Sequence[Change], *, force: bool
) -> RestorePlan:
    live = {a.key: a for a in await deps.platform.list_automations()}
    async with deps.db.session() as session:
        snapshot_keys = [
            a.key for a in await store.snapshot_automations(session, snapshot_id=pause.snapshot_id)
        ]
    return plan_restore([_done(change) for change in done], live, snapshot_keys, force=force)


async def pause_to_restore(deps: Deps) -> tuple[ChangeRequest, list[Change]]:
    return await _pause_to_restore(deps)


async def _pause_to_restore(deps: Deps) -> tuple[ChangeRequest, list[Change]]:
    async with deps.db.session() as session:
        guard = await store.get_guard(session, target=deps.target, platform=deps.platform.name)
        await session.commit()
        open_restores = [
            r for r in await store.open_requests(session, target=deps.target) if r.kind == "restore"
        ]
        if open_restores:
            raise ConflictError(f"restore {open_restores[0].id} is already {open_restores[0].status}")
        pause = await store.last_pause(session, target=deps.target)
        if guard.state == GuardStatus.LIVE or pause is None:
            raise ConflictError(f"nothing to restore: {deps.target} is live, no pause is in place")
        if pause.status in RESUMABLE:
            raise ConflictError(f"pause {pause.id} is still {pause.status}; let it finish first")
        changes = await store.request_changes(session, request_id=pause.id)
    done = [c for c in changes if c.status == ChangeStatus.DONE]
    return pause, done


async def _refuse_if_guarded(deps: Deps) -> None:
    async with deps.db.session() as session:
        guard = await store.get_guard(session, target=deps.target, platform=deps.platform.name)
        await session.commit()
        if guard.state != GuardStatus.LIVE:
            raise ConflictError(
                f"a pause is already in place on {deps.target} ({guard.state} since "
                f"{guard.since:%Y-%m-%d %H:%M} UTC, by {guard.changed_by}); restore it first"
            )
        pending = [r for r in await store.open_requests(session, target=deps.target) if r.kind == "pause"]
        if pending:
            raise ConflictError(f"pause request {pending[0].id} is already {pending[0].status}")


async def _store_request(
    deps: Deps,
    *,
    kind: str,
    snapshot_id: str,
    planned: Sequence[PlannedChange],
    actor: str,
    approved: bool,
    mode: str | None,
    options: dict[str, Any],
    pause_request_id: str | None = None,
    planned_end_at: datetime | None = None,
) -> Outcome:
    now = deps.clock()
    request = ChangeRequest(
        id=store.new_id("cr"),
        target=deps.target,
        kind=kind,
        status=RequestStatus.APPROVED if approved else RequestStatus.PENDING,
        mode=mode,
        options=options,
        snapshot_id=snapshot_id,
        pause_request_id=pause_request_id,
        requester=actor,
        created_at=now,
        expires_at=None if approved else now + deps.settings.guard_approval_ttl,
        decided_by=actor if approved else None,
        decided_at=now if approved else None,
        planned_end_at=planned_end_at,
    )
    changes = [
        Change(
            request_id=request.id,
            position=position,
            kind=p.kind,
            automation_id=p.automation_id,
            name=p.name,
            action=p.action,
            before=p.before,
            after=p.after,
            status=p.status,
            note=p.note,
            url=p.url,
            updated_at=now,
        )
        for position, p in enumerate(planned)
    ]
    async with deps.db.session() as session:
        session.add(request)
        await session.flush()
        session.add_all(changes)
        detail = {"changes": len(changes), "snapshot_id": snapshot_id, **({"mode": mode} if mode else {})}
        await store.audit(
            session,
            actor=actor,
            action=f"{kind}_requested",
            target=deps.target,
            at=now,
            request_id=request.id,
            detail=detail,
        )
        await reminders.on_request_created(session, deps, request)
        await session.commit()
    return Outcome(request, changes)


# ---- decisions --------------------------------------------------------------------------------


async def decide(
    deps: Deps, request_id: str, *, actor: str, approve: bool, reason: str | None = None
) -> ChangeRequest:
    """Compare-and-set `pending` -> `approved`/`rejected`: a double click decides once.
    Who may decide is checked by bot.approvals before this is called."""
    now = deps.clock()
    async with deps.db.session() as session:
        request = await store.get_request(session, request_id=request_id)
        if (
            request.expires_at is not None
            and request.expires_at <= now
            and request.status == RequestStatus.PENDING
        ):
            await store.compare_and_set_status(
                session,
                request_id=request_id,
                expected=DECIDABLE,
                status=RequestStatus.EXPIRED,
                finished_at=now,
            )
            await session.commit()
            raise PermissionDenied(f"request {request_id} expired at {request.expires_at:%Y-%m-%d %H:%M} UTC")
        status = RequestStatus.APPROVED if approve else RequestStatus.REJECTED
        extra: dict[str, Any] = {"decided_by": actor, "decided_at": now}
        if not approve:
            extra.update(finished_at=now, reason=reason)
        won = await store.compare_and_set_status(
            session, request_id=request_id, expected=DECIDABLE, status=status, **extra
        )
        if not won:
            await session.rollback()
            current = await store.get_request(session, request_id=request_id)
            by = f" by {current.decided_by}" if current.decided_by else ""
            raise ConflictError(f"request {request_id} is already {current.status}{by}")
        await store.audit(
            session,
            actor=actor,
            action="approved" if approve else "rejected",
            target=request.target,
            at=now,
            request_id=request_id,
        )
        await session.refresh(request)
        await reminders.on_request_decided(session, deps, request)
        await session.commit()
        await session.refresh(request)
        return request


def _done(change: Change) -> DoneChange:
    return DoneChange(
        kind=change.kind,
        automation_id=change.automation_id,
        name=change.name,
        action=Action(change.action),
        before=change.before,
        after=change.after,
        url=change.url,
    )


def snapshot_document(snapshot: Snapshot, automations: Sequence[Automation]) -> dict[str, Any]:
    """A snapshot as the JSON people download (CLI --json, the file in the card's thread)."""
    return {
        "id": snapshot.id,
        "platform": snapshot.platform,
        "taken_at": snapshot.taken_at.isoformat(),
        "taken_by": snapshot.taken_by,
        "automations": [
            {
                "kind": a.kind,
                "id": a.id,
                "name": a.name,
                "enabled": a.enabled,
                "updated_at": a.updated_at,
                "definition": a.definition,
            }
            for a in automations
        ],
    }
