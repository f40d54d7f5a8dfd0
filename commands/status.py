"""Where the guard stands: state, since when, by whom, what is off, open requests, imports, next reminder."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from sqlmodel import col, select

from bot import store
from bot.models import ChangeRequest, Guard, ImportRun, Reminder
from commands.base import Context, Parser, Reply

NAME = "status"
USAGE = "status"


@dataclass
class StatusView:
    platform: str
    sandbox: bool
    guard: Guard
    pause: ChangeRequest | None
    pause_counts: dict[str, int]
    open_requests: list[ChangeRequest]
    active_runs: list[ImportRun] = field(default_factory=list)
    next_reminder: Reminder | None = None


def add_arguments(parser: Parser) -> None:
    return None


async def gather(ctx: Context) -> StatusView:
    deps = ctx.deps
    async with deps.db.session() as session:
        # Read-only: a target never guarded is live, and asking must not write a row for it.
        known = await session.get(Guard, deps.target)
        guard = known or Guard(target=deps.target, platform=deps.platform.name)
        pause = await store.last_pause(session, target=deps.target)
        counts = {}
        if pause is not None:
            counts = store.count_by(
                c.status for c in await store.request_changes(session, request_id=pause.id)
            )
        runs = await session.exec(
            select(ImportRun).where(ImportRun.target == deps.target, ImportRun.status == "running")
        )
        reminder = await session.exec(
            select(Reminder)
            .where(Reminder.target == deps.target, Reminder.status == "scheduled")
            .order_by(col(Reminder.due_at))
            .limit(1)
        )
        return StatusView(
            platform=deps.platform.display_name,
            sandbox=deps.is_sandbox,
            guard=guard,
            pause=pause,
            pause_counts=counts,
            open_requests=await store.open_requests(session, target=deps.target),
            active_runs=list(runs),
            next_reminder=reminder.first(),
        )


async def run(args: argparse.Namespace, ctx: Context) -> Reply:
    view = await gather(ctx)
    return Reply(f"{view.platform}: {view.guard.state}", kind="status", data=view)
