"""Add Intercom workflows to the guarded list (Intercom cannot list them); no arguments: show the list."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.base import Automation, AutomationGone
from adapters.intercom import PLAN_RESTRICTED, IntercomPlatform, parse_workflow_ref
from bot import store
from bot.deps import Deps
from bot.errors import ConflictError, NotFound, UsageError
from bot.models import GuardStatus, TrackedWorkflow
from commands.base import Context, Parser, Reply

NAME = "track"
USAGE = "track <workflow URL or id>... [--title NAME]"


@dataclass
class TrackResult:
    added: list[TrackedWorkflow] = field(default_factory=list)
    already: list[TrackedWorkflow] = field(default_factory=list)
    unverifiable: list[str] = field(default_factory=list)  # ids whose export the plan refuses
    states: dict[str, str | None] = field(default_factory=dict)  # id -> live/paused/draft (None: unknown)
    guard_state: str = GuardStatus.LIVE


def add_arguments(parser: Parser) -> None:
    parser.add_argument(
        "workflows",
        nargs="*",
        metavar="WORKFLOW",
        help="a workflow's link from Intercom's Workflows page, or its numeric id (several allowed)",
    )
    parser.add_argument(
        "--title",
        help="name to show for a single workflow whose export the plan refuses (Intercom cannot tell us)",
    )


def require_intercom(deps: Deps) -> IntercomPlatform:
    """Tracking exists because Intercom has no list endpoint; other platforms list their own."""
    if not isinstance(deps.platform, IntercomPlatform):
        raise UsageError(
            f"`track` and `untrack` are for Intercom only: {deps.platform.display_name} lists its "
            "automations itself (GUARD_PLATFORM is not intercom)"
        )
    return deps.platform


def parse_refs(refs: Sequence[str]) -> list[str]:
    """Workflow ids from links or ids, in order, without duplicates; UsageError names the bad one."""
    ids: list[str] = []
    for ref in refs:
        try:
            workflow_id = parse_workflow_ref(ref)
        except ValueError as error:
            raise UsageError(str(error)) from None
        if workflow_id not in ids:
            ids.append(workflow_id)
    return ids


async def tracked(session: AsyncSession, *, target: str) -> list[TrackedWorkflow]:
    rows = await session.exec(
        select(TrackedWorkflow).where(TrackedWorkflow.target == target).order_by(col(TrackedWorkflow.id))
    )
    return list(rows)


async def track(deps: Deps, refs: Sequence[str], *, actor: str, title: str | None = None) -> TrackResult:
    """Export each workflow once to check it exists, then store it with its title. All or nothing:
    one unknown id tracks none (a typo must not leave a half-guarded list)."""
    platform = require_intercom(deps)
    ids = parse_refs(refs)
    if not ids:
        raise UsageError(f"name at least one workflow\nusage: /migration {USAGE}")
    if title is not None and len(ids) != 1:
        raise UsageError("--title names one workflow: track it on its own")
    exported = await _export_all(platform, ids)
    result = TrackResult()
    async with deps.db.session() as session:
        known = {row.workflow_id: row for row in await tracked(session, target=deps.target)}
        for workflow_id in ids:
            automation = exported[workflow_id]
            restricted = automation.definition.get("export") == PLAN_RESTRICTED
            result.states[workflow_id] = automation.definition.get("state")
            if restricted:
                result.unverifiable.append(workflow_id)
            name = (title or None) if restricted else automation.name
            if workflow_id in known:
                row = known[workflow_id]
                if name and row.title != name:
                    row.title = name
                    session.add(row)
                result.already.append(row)
                continue
            row = TrackedWorkflow(
                target=deps.target, workflow_id=workflow_id, title=name, added_by=actor, added_at=deps.clock()
            )
            session.add(row)
            result.added.append(row)
        guard = await store.get_guard(session, target=deps.target, platform=platform.name)
        result.guard_state = guard.state
        if result.added:
            await store.audit(
                session,
                actor=actor,
                action="tracked",
                target=deps.target,
                at=deps.clock(),
                detail={"workflows": [row.workflow_id for row in result.added]},
            )
        try:
            await session.commit()
        except sa.exc.IntegrityError:
            raise ConflictError("someone tracked the same workflow at that moment: run it again") from None
    return result


async def _export_all(platform: IntercomPlatform, ids: list[str]) -> dict[str, Automation]:
    exported: dict[str, Automation] = {}
    missing = []
    for workflow_id in ids:
        try:
            exported[workflow_id] = await platform.get_automation("workflow", workflow_id)
        except AutomationGone:
            missing.append(workflow_id)
    if missing:
        raise NotFound(
            f"nothing tracked: Intercom has no workflow {', '.join(missing)} (404). Copy the link from "
            "Intercom's Workflows page (…/automation/workflows/<id>) of this workspace"
        )
    return exported


def describe(result: TrackResult) -> str:
    lines = []
    if result.added:
        lines.append(f"Now tracking {len(result.added)} Intercom workflow(s):")
        lines += [_line(row, result.states.get(row.workflow_id)) for row in result.added]
    if result.already:
        lines.append("Already tracked: " + ", ".join(_label(row) for row in result.already))
    if result.unverifiable:
        lines.append(
            f"Cannot verify {', '.join(result.unverifiable)}: this workspace's plan refuses workflow export "
            f"(403 {PLAN_RESTRICTED}), so the bot cannot read its state. It is tracked and will be on the "
            "checklist; a person's confirmation will be the only record that it was paused."
        )
    if result.added and result.guard_state != GuardStatus.LIVE:
        lines.append(
            f"The guard is {result.guard_state}: workflows tracked now are not part of the current pause. "
            "Pause them in Intercom by hand if they must not fire on imported conversations."
        )
    return "\n".join(lines)


def _label(row: TrackedWorkflow) -> str:
    return f"{row.workflow_id} ({row.title})" if row.title else row.workflow_id


def _line(row: TrackedWorkflow, state: str | None) -> str:
    return f"• {_label(row)}: {state or 'state unknown'}"


async def run(args: argparse.Namespace, ctx: Context) -> Reply:
    deps = ctx.deps
    require_intercom(deps)
    if not args.workflows:
        if args.title is not None:
            raise UsageError("--title needs the workflow it names")
        async with deps.db.session() as session:
            rows = await tracked(session, target=deps.target)
        if not rows:
            text = "No Intercom workflows are tracked yet: `track <workflow link>` adds one."
        else:
            lines = [f"Tracked Intercom workflows ({len(rows)}):", *(f"• {_label(r)}" for r in rows)]
            text = "\n".join(lines)
        return Reply(text, data=[_plain(row) for row in rows])
    result = await track(deps, args.workflows, actor=ctx.actor, title=args.title)
    return Reply(
        describe(result),
        data={
            "added": [_plain(row) for row in result.added],
            "already": [_plain(row) for row in result.already],
            "unverifiable": result.unverifiable,
        },
    )


def _plain(row: TrackedWorkflow) -> dict[str, str | None]:
    return {"workflow_id": row.workflow_id, "title": row.title, "added_by": row.added_by}
