"""`/migration <subcommand>`: parse and acknowledge at once, do the work after the ack."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import engine, ids
from bot.blocks import answers
from bot.deps import Deps
from bot.errors import UsageError
from bot.slack import approvals
from bot.slack.context import Respond, SlackContext
from commands import REGISTRY
from commands.base import Context, Parser, Reply, split


def parse(text: str) -> tuple[str, argparse.Namespace]:
    """`pause --mode exempt` -> ("pause", Namespace(...)); UsageError for anything else."""
    words = split(text or "")
    name = words[0].lower() if words else "help"
    module = REGISTRY.get(name)
    if module is None:
        raise UsageError(f"unknown subcommand `{name}`; one of: {', '.join(REGISTRY)}")
    parser = Parser(prog=f"{ids.SLASH_COMMAND} {name}")
    module.add_arguments(parser)
    try:
        return name, parser.parse_args(words[1:])
    except argparse.ArgumentError as error:
        raise UsageError(f"{error}\nusage: {ids.SLASH_COMMAND} {module.USAGE}") from None


# Work after the ack runs in two small lanes: a burst of commands waits its turn instead of crowding
# the event loop that acknowledges the next ones, and a slow helpdesk (pause reads every automation)
# never holds up `status` or `help`.
LANES = {"platform": 2, "local": 1}
PLATFORM_COMMANDS = frozenset({"snapshot", "pause", "restore", "track", "untrack"})


def register(app: AsyncApp, deps: Deps, slack: SlackContext) -> None:
    lanes = {lane: asyncio.Semaphore(size) for lane, size in LANES.items()}

    async def answer(name: str, args: argparse.Namespace, command: dict[str, Any], respond: Respond) -> None:
        async with lanes["platform" if name in PLATFORM_COMMANDS else "local"]:
            await slack.run_safely(execute(slack, name, args, command, respond), respond)

    async def on_command(ack: Any, command: dict[str, Any]) -> None:
        try:
            name, args = parse(command.get("text", ""))
        except UsageError as error:
            await ack(text=f":warning: {error}", response_type="ephemeral")
            return
        await ack(
            text=f":hourglass_flowing_sand: `{ids.SLASH_COMMAND} {name}`…",
            response_type="ephemeral",
        )
        respond = slack.responder(command.get("response_url"))
        slack.spawn(answer(name, args, command, respond), name=f"command:{name}")

    app.command(ids.SLASH_COMMAND)(on_command)


async def execute(
    slack: SlackContext, name: str, args: argparse.Namespace, command: dict[str, Any], respond: Respond
) -> None:
    ctx = Context(deps=slack.deps, actor=command["user_id"], surface="slack")
    reply = await REGISTRY[name].run(args, ctx)
    await deliver(slack, reply, command, respond)


async def deliver(slack: SlackContext, reply: Reply, command: dict[str, Any], respond: Respond) -> None:
    where = approvals.card_context(slack)
    if reply.kind == "approval":
        await approvals.open_request(slack, reply.data, respond)
        return
    if reply.kind == "snapshot":
        snapshot, automations = reply.data
        text, blocks = answers.snapshot_answer(snapshot, automations, where)
        await respond(text=text, blocks=blocks, response_type="ephemeral")
        await slack.client.files_upload_v2(
            channel=slack.channel or command["channel_id"],
            filename=f"{snapshot.id}.json",
            title=f"Snapshot {snapshot.id}",
            content=json.dumps(engine.snapshot_document(snapshot, automations), indent=2),
            initial_comment=f"Snapshot `{snapshot.id}` taken by <@{command['user_id']}>: "
            f"{len(automations)} automation(s).",
        )
        return
    builder = answers.BUILDERS.get(reply.kind)
    text, blocks = builder(reply, where) if builder else (reply.text, answers.text_blocks(reply.text, where))
    await respond(text=text, blocks=blocks, response_type="ephemeral")
