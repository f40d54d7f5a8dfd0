"""Show what each subcommand does."""

from __future__ import annotations

import argparse

from commands.base import Context, Parser, Reply

NAME = "help"
USAGE = "help"


def add_arguments(parser: Parser) -> None:
    return None


def summary() -> list[tuple[str, str]]:
    from commands import REGISTRY

    return [(module.USAGE, (module.__doc__ or "").strip().splitlines()[0]) for module in REGISTRY.values()]


async def run(args: argparse.Namespace, ctx: Context) -> Reply:
    lines = [f"/migration {usage} - {text}" for usage, text in summary()]
    return Reply("\n".join(lines), kind="help", data=summary())
