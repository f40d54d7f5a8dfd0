"""Recent audit events: who snapshotted, requested, approved, applied and restored what."""

from __future__ import annotations

import argparse

from bot import store
from commands.base import Context, Parser, Reply

NAME = "history"
USAGE = "history [--limit N]"


def add_arguments(parser: Parser) -> None:
    parser.add_argument(
        "--limit", type=int, default=15, choices=range(1, 101), metavar="N", help="how many events (1-100)"
    )


async def run(args: argparse.Namespace, ctx: Context) -> Reply:
    async with ctx.deps.db.session() as session:
        events = await store.recent_audit(session, target=ctx.deps.target, limit=args.limit)
    return Reply(f"{len(events)} recent event(s) on {ctx.deps.target}.", kind="history", data=events)
