"""Remove Intercom workflows from the guarded list (refused while a pause or request holds them)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import store
from bot.deps import Deps
from bot.errors import ConflictError, UsageError
from bot.models import GuardStatus, TrackedWorkflow
from commands.base import Context, Parser, Reply
from commands.track import parse_refs, require_intercom, tracked

NAME = "untrack"
USAGE = "untrack <workflow URL or id>..."


def add_arguments(parser: Parser) -> None:
    parser.add_argument("workflows", nargs="+", metavar="WORKFLOW", help="a workflow's link or numeric id")


async def held(session: AsyncSession, *, target: str, platform: str) -> dict[str, str]:
    """Workflow id -> request id, for workflows an open request or the pause in place holds.
    Untracking one of those would make the restore think it was deleted and never set it live."""
    requests = list(await store.open_requests(session, target=target))
    guard = await store.get_guard(session, target=target, platform=platform)
    pause = await store.last_pause(session, target=target) if guard.state != GuardStatus.LIVE else None
    if pause is not None:
        requests.append(pause)
    holders: dict[str, str] = {}
    for request in requests:
        for change in await store.request_changes(session, request_id=request.id):
            holders.setdefault(change.automation_id, request.id)
    return holders


async def untrack(deps: Deps, refs: Sequence[str], *, actor: str) -> tuple[list[TrackedWorkflow], list[str]]:
    """Remove what is tracked; returns (removed rows, ids that were not tracked). All or nothing."""
    require_intercom(deps)
    ids = parse_refs(refs)
    async with deps.db.session() as session:
        rows = {row.workflow_id: row for row in await tracked(session, target=deps.target)}
        holders = await held(session, target=deps.target, platform=deps.platform.name)
        busy = [f"{workflow_id} ({holders[workflow_id]})" for workflow_id in ids if workflow_id in holders]
        if busy:
            raise ConflictError(
                f"nothing untracked: {', '.join(busy)} belong to a pause or request in progress; "
                "untrack them after the restore"
            )
        removed = [rows[workflow_id] for workflow_id in ids if workflow_id in rows]
        unknown = [workflow_id for workflow_id in ids if workflow_id not in rows]
        if removed:
            await session.execute(
                sa.delete(TrackedWorkflow).where(
                    col(TrackedWorkflow.target) == deps.target,
                    col(TrackedWorkflow.workflow_id).in_([row.workflow_id for row in removed]),
                )
            )
            await store.audit(
                session,
                actor=actor,
                action="untracked",
                target=deps.target,
                at=deps.clock(),
                detail={"workflows": [row.workflow_id for row in removed]},
            )
        await session.commit()
    return removed, unknown


async def run(args: argparse.Namespace, ctx: Context) -> Reply:
    if not args.workflows:
        raise UsageError(f"name at least one workflow\nusage: /migration {USAGE}")
    removed, unknown = await untrack(ctx.deps, args.workflows, actor=ctx.actor)
    lines = []
    if removed:
        names = ", ".join(f"{r.workflow_id} ({r.title})" if r.title else r.workflow_id for r in removed)
        lines.append(f"No longer tracking {len(removed)} Intercom workflow(s): {names}")
    if unknown:
        lines.append(f"Not tracked, nothing to remove: {', '.join(unknown)}")
    return Reply("\n".join(lines), data={"removed": [r.workflow_id for r in removed], "not_tracked": unknown})
