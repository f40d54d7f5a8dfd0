"""Queries. Keyword-only functions over an AsyncSession; the caller owns the transaction."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.base import Automation
from bot.errors import NotFound
from bot.models import (
    OPEN_REQUEST_STATUSES,
    AuditEvent,
    Change,
    ChangeRequest,
    Guard,
    GuardStatus,
    Snapshot,
    SnapshotItem,
    utcnow,
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(5)}"


async def get_guard(session: AsyncSession, *, target: str, platform: str) -> Guard:
    """The target's guard row, created `live` on first use."""
    guard = await session.get(Guard, target)
    if guard is None:
        guard = Guard(target=target, platform=platform, state=GuardStatus.LIVE)
        session.add(guard)
        await session.flush()
    return guard


async def set_guard(
    session: AsyncSession,
    *,
    target: str,
    platform: str,
    state: GuardStatus,
    by: str,
    at: datetime,
    pause_request_id: str | None = None,
) -> Guard:
    guard = await get_guard(session, target=target, platform=platform)
    if guard.state != state:
        guard.since = at
    guard.state = state
    guard.changed_by = by
    if state == GuardStatus.LIVE:
        guard.pause_request_id = None
        guard.unanswered_reminders = 0
    elif pause_request_id is not None:
        guard.pause_request_id = pause_request_id
    session.add(guard)
    return guard


async def save_snapshot(
    session: AsyncSession,
    *,
    target: str,
    platform: str,
    automations: Sequence[Automation],
    taken_by: str,
    at: datetime,
) -> Snapshot:
    snapshot = Snapshot(
        id=new_id("snap"),
        target=target,
        platform=platform,
        taken_by=taken_by,
        taken_at=at,
        item_count=len(automations),
    )
    session.add(snapshot)
    await session.flush()
    session.add_all(
        SnapshotItem(
            snapshot_id=snapshot.id,
            kind=item.kind,
            automation_id=item.id,
            name=item.name,
            enabled=item.enabled,
            definition=item.definition,
            updated_at=item.updated_at,
            url=item.url,
        )
        for item in automations
    )
    return snapshot


def item_to_automation(item: SnapshotItem) -> Automation:
    return Automation(
        kind=item.kind,
        id=item.automation_id,
        name=item.name,
        enabled=item.enabled,
        definition=item.definition,
        updated_at=item.updated_at,
        url=item.url,
    )


async def snapshot_automations(session: AsyncSession, *, snapshot_id: str) -> list[Automation]:
    rows = await session.exec(
        select(SnapshotItem).where(SnapshotItem.snapshot_id == snapshot_id).order_by(col(SnapshotItem.id))
    )
    return [item_to_automation(item) for item in rows]


async def get_snapshot(session: AsyncSession, *, snapshot_id: str) -> Snapshot:
    snapshot = await session.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise NotFound(f"no snapshot {snapshot_id}")
    return snapshot


async def latest_snapshot(session: AsyncSession, *, target: str) -> Snapshot | None:
    rows = await session.exec(
        select(Snapshot).where(Snapshot.target == target).order_by(col(Snapshot.taken_at).desc()).limit(1)
    )
    return rows.first()


async def get_request(session: AsyncSession, *, request_id: str) -> ChangeRequest:
    request = await session.get(ChangeRequest, request_id)
    if request is None:
        raise NotFound(f"no change request {request_id}")
    return request


async def request_changes(session: AsyncSession, *, request_id: str) -> list[Change]:
    rows = await session.exec(
        select(Change).where(Change.request_id == request_id).order_by(col(Change.position))
    )
    return list(rows)


async def open_requests(session: AsyncSession, *, target: str) -> list[ChangeRequest]:
    rows = await session.exec(
        select(ChangeRequest)
        .where(ChangeRequest.target == target, col(ChangeRequest.status).in_(OPEN_REQUEST_STATUSES))
        .order_by(col(ChangeRequest.created_at))
    )
    return list(rows)


async def requests_in(
    session: AsyncSession, *, statuses: Iterable[str], target: str | None = None
) -> list[ChangeRequest]:
    query = select(ChangeRequest).where(col(ChangeRequest.status).in_(list(statuses)))
    if target is not None:
        query = query.where(ChangeRequest.target == target)
    return list(await session.exec(query.order_by(col(ChangeRequest.created_at))))


async def compare_and_set_status(
    session: AsyncSession,
    *,
    request_id: str,
    expected: Iterable[str],
    status: str,
    **fields: Any,
) -> bool:
    """Move a request from one of `expected` to `status` in one statement; False if another
    click, replica or process got there first."""
    result = await session.execute(
        sa.update(ChangeRequest)
        .where(col(ChangeRequest.id) == request_id, col(ChangeRequest.status).in_(list(expected)))
        .values(status=status, **fields)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def update_change(session: AsyncSession, *, change_id: int, **fields: Any) -> None:
    fields.setdefault("updated_at", utcnow())
    await session.execute(
        sa.update(Change)
        .where(col(Change.id) == change_id)
        .values(**fields)
        .execution_options(synchronize_session=False)
    )


async def audit(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target: str,
    at: datetime,
    request_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            actor=actor, action=action, target=target, at=at, request_id=request_id, detail=detail or {}
        )
    )


async def recent_audit(session: AsyncSession, *, target: str, limit: int = 15) -> list[AuditEvent]:
    rows = await session.exec(
        select(AuditEvent)
        .where(AuditEvent.target == target)
        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .limit(limit)
    )
    return list(rows)


async def last_pause(session: AsyncSession, *, target: str) -> ChangeRequest | None:
    """The pause that the target's guard currently holds, if any."""
    guard = await session.get(Guard, target)
    if guard is None or guard.pause_request_id is None:
        return None
    return await session.get(ChangeRequest, guard.pause_request_id)


def count_by(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
