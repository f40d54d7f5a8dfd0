"""Capture every automation of the target (full definitions, kept forever) without changing anything."""

from __future__ import annotations

import argparse

from bot import engine
from commands.base import Context, Parser, Reply

NAME = "snapshot"
USAGE = "snapshot"


def add_arguments(parser: Parser) -> None:
    return None


async def run(args: argparse.Namespace, ctx: Context) -> Reply:
    snapshot, automations = await engine.take_snapshot(ctx.deps, actor=ctx.actor)
    return Reply(
        f"Snapshot {snapshot.id}: {len(automations)} automation(s) of {ctx.deps.platform.display_name}.",
        kind="snapshot",
        data=(snapshot, automations),
    )
