"""Snapshot every automation and plan a pause; applied once a manager approves it."""

from __future__ import annotations

import argparse

from bot import engine
from bot.planning import PauseOptions
from bot.settings import format_duration, parse_duration
from commands.base import Context, Parser, Reply

NAME = "pause"
USAGE = "pause [--mode disable|exempt] [--only KIND]... [--keep NAME]... [--for 8h]"


def add_arguments(parser: Parser) -> None:
    parser.add_argument(
        "--mode",
        choices=("disable", "exempt"),
        default="disable",
        help="disable: switch automations off; exempt: keep them on for live tickets but skip "
        "records tagged with GUARD_IMPORT_TAG (needs a platform that can edit conditions)",
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="KIND", help="guard only this kind (repeatable)"
    )
    parser.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="NAME",
        help="leave this automation running (repeatable)",
    )
    parser.add_argument(
        "--for",
        dest="duration",
        type=_duration,
        metavar="DURATION",
        help="planned length, e.g. 8h: a reminder fires when it ends",
    )


def _duration(text: str):  # type: ignore[no-untyped-def]
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def options(args: argparse.Namespace, ctx: Context) -> PauseOptions:
    return PauseOptions(
        mode=args.mode,
        only=frozenset(args.only),
        keep=frozenset(args.keep),
        tag=ctx.deps.settings.guard_import_tag,
    )


async def run(args: argparse.Namespace, ctx: Context) -> Reply:
    deps = ctx.deps
    planned_end = deps.clock() + args.duration if args.duration else None
    if ctx.surface == "cli" and not ctx.confirmed:
        _, planned = await engine.preview_pause(deps, options(args, ctx))
        return Reply(
            f"Plan only: {len(planned)} change(s). Nothing was changed; run again with --yes to apply.",
            kind="plan",
            data=planned,
        )
    outcome = await engine.request_pause(
        deps, options(args, ctx), actor=ctx.actor, approved=ctx.surface == "cli", planned_end_at=planned_end
    )
    if ctx.surface == "cli":
        outcome = await engine.apply(deps, outcome.request.id, actor=ctx.actor)
        return Reply(f"Pause {outcome.request.id}: {outcome.request.status}", kind="outcome", data=outcome)
    length = f" for {format_duration(args.duration)}" if args.duration else ""
    return Reply(
        f"Pause request {outcome.request.id}{length}: {len(outcome.changes)} change(s) waiting for approval.",
        kind="approval",
        data=outcome,
    )
