"""Put back exactly what the pause changed; edits people made meanwhile are reported, not overwritten."""

from __future__ import annotations

import argparse

from bot import engine
from commands.base import Context, Parser, Reply

NAME = "restore"
USAGE = "restore [--force]"


def add_arguments(parser: Parser) -> None:
    parser.add_argument(
        "--force", action="store_true", help="also revert automations that people edited during the pause"
    )


async def run(args: argparse.Namespace, ctx: Context) -> Reply:
    deps = ctx.deps
    if ctx.surface == "cli" and not ctx.confirmed:
        pause, done = await engine.pause_to_restore(deps)
        plan = await engine.preview_restore(deps, pause, done, force=args.force)
        return Reply(
            f"Plan only: restore of pause {pause.id}. Nothing was changed; run again with --yes to apply.",
            kind="plan",
            data=plan.changes,
            extra={"created_during_pause": plan.created_during_pause},
        )
    outcome = await engine.request_restore(
        deps, actor=ctx.actor, force=args.force, approved=ctx.surface == "cli"
    )
    if ctx.surface == "cli":
        outcome = await engine.apply(deps, outcome.request.id, actor=ctx.actor)
        return Reply(f"Restore {outcome.request.id}: {outcome.request.status}", kind="outcome", data=outcome)
    return Reply(
        f"Restore request {outcome.request.id}: {len(outcome.changes)} change(s).",
        kind="approval",
        data=outcome,
    )
