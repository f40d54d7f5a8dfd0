"""Tick manual steps from the shell (break-glass when Slack is down): the bot re-reads each one."""

from __future__ import annotations

import argparse

from bot import checklist
from commands.base import Context, Parser, Reply

NAME = "confirm"
USAGE = "confirm STEP [STEP]..."


def add_arguments(parser: Parser) -> None:
    parser.add_argument(
        "steps", nargs="+", type=int, metavar="STEP", help="step number, as `pause --yes` lists them"
    )


async def run(args: argparse.Namespace, ctx: Context) -> Reply:
    lines = []
    for step in args.steps:
        result = await checklist.confirm_step(ctx.deps, step, ctx.actor)
        name = result.change.name
        if result.already:
            lines.append(f"step {step} ({name}): already done")
        elif result.verification == checklist.MISMATCH:
            lines.append(
                f"step {step} ({name}): NOT done: marked {result.expected}, the platform says {result.seen}"
            )
        else:
            lines.append(f"step {step} ({name}): {result.verification or 'skipped (deleted)'}")
        if result.outcome is not None:
            lines.append(f"{result.request.kind} {result.request.id}: {result.outcome.request.status}")
    remaining = result.remaining
    lines.append(f"{remaining} step(s) still open" if remaining else "no steps left open")
    return Reply("\n".join(lines))
