"""The `migration-guard` console script: the bot's server, and the break-glass path when Slack is down."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import text
from bot.errors import GuardError, PlatformError, UsageError, error_id
from bot.settings import Settings, SettingsError, load_settings
from commands import REGISTRY, confirm
from commands import report as report_command
from commands.base import Context

log = logging.getLogger("migration-guard")

CLI_COMMANDS = {
    **{
        name: REGISTRY[name]
        for name in ("snapshot", "pause", "restore", "status", "history", "track", "untrack")
    },
    "confirm": confirm,  # the Slack checklist's buttons, for when Slack is down
}
EPILOG = """\
Without --yes, pause and restore print the plan and change nothing.
Settings come from the environment (and .env): see README.md. The default platform is the
embedded sandbox and the default database the SQLite file migration-guard.db here."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="migration-guard",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    serve = verbs.add_parser(
        "serve", help="run the Slack bot (HTTP; Socket Mode too when SLACK_APP_TOKEN is set)"
    )
    serve.add_argument("--port", type=int, help="HTTP port (default: PORT or 3000)")
    for name, module in CLI_COMMANDS.items():
        summary = (module.__doc__ or "").strip().splitlines()[0]
        sub = verbs.add_parser(name, help=summary, description=summary, parents=[_command_parser(module)])
        if name in ("pause", "restore"):
            sub.add_argument(
                "--yes",
                action="store_true",
                help="apply now, without a Slack approval (audited as cli:<you>)",
            )
        if name == "snapshot":
            sub.add_argument(
                "--json",
                metavar="FILE",
                dest="json_file",
                help="also write the snapshot as JSON to FILE ('-' for stdout)",
            )
        else:
            sub.add_argument("--json", action="store_true", help="print JSON for scripts")
    verbs.add_parser("resume", help="finish an apply that a crash or restart interrupted")
    db = verbs.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"], help="upgrade: apply the schema migrations")
    manifest = verbs.add_parser("manifest", help="print the Slack app manifest")
    manifest.add_argument(
        "--url", help="public https://HOST of the bot: prints the HTTP-mode manifest with request URLs"
    )
    report = verbs.add_parser(
        "report",
        help="report an import's progress to the bot (start, batch, finish)",
        description=report_command.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report_command.add_arguments(report)
    return parser


def _command_parser(module) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser(add_help=False)
    module.add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.INFO if args.verb == "serve" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.verb == "manifest":
        from bot.manifest import render_manifest

        try:
            print(render_manifest(args.url), end="")
        except ValueError as error:
            print(f"migration-guard manifest: {error}", file=sys.stderr)
            return 2
        return 0
    if args.verb == "report":  # a client of the API: needs only GUARD_API_URL and GUARD_API_TOKEN
        return report_command.main(args)
    try:
        return asyncio.run(run(args, load_settings()))
    except SettingsError as error:
        print(f"migration-guard: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.verb == "serve":
        from bot.server import serve

        await serve(settings, port=args.port)
        return 0
    if args.verb == "db":
        from bot.db import upgrade

        await upgrade(settings.database_url)
        print("database schema is up to date")
        return 0
    from bot.deps import build_deps

    deps = await build_deps(settings)
    try:
        return await _run_command(args, deps)
    finally:
        await deps.aclose()


async def _run_command(args: argparse.Namespace, deps) -> int:  # type: ignore[no-untyped-def]
    from bot import engine

    actor = f"cli:{getpass.getuser()}"
    if deps.is_sandbox:
        print(
            "[sandbox] sample helpdesk in the local database; no real automations are touched.",
            file=sys.stderr,
        )
    try:
        if args.verb == "resume":
            outcomes = await engine.resume_all(deps, actor=actor)
            print("\n".join(f"{o.request.id}: {o.request.status}" for o in outcomes) or "nothing to resume")
            return 0
        ctx = Context(deps=deps, actor=actor, surface="cli", confirmed=getattr(args, "yes", False))
        reply = await CLI_COMMANDS[args.verb].run(args, ctx)
    except UsageError as error:
        print(f"migration-guard {args.verb}: {error}", file=sys.stderr)
        return 2
    except (GuardError, PlatformError) as error:
        print(f"migration-guard {args.verb}: {error}", file=sys.stderr)
        return 1
    except Exception:
        ident = error_id()
        log.exception("unexpected error %s", ident)
        print(
            f"migration-guard {args.verb}: unexpected error {ident} (details in the log above)",
            file=sys.stderr,
        )
        return 1
    json_file = getattr(args, "json_file", None)
    if json_file:
        _write_snapshot_json(reply, json_file)
    if getattr(args, "json", False) is True:
        print(text.to_json(reply))
    elif json_file != "-":
        print(text.render(reply))
    failed = reply.kind == "outcome" and reply.data.request.status in ("failed", "partially_applied", "stale")
    return 1 if failed else 0


def _write_snapshot_json(reply, destination: str) -> None:  # type: ignore[no-untyped-def]
    from bot.engine import snapshot_document

    payload = json.dumps(snapshot_document(*reply.data), indent=2)
    if destination == "-":
        print(payload)
    else:
        Path(destination).write_text(payload + "\n")


if __name__ == "__main__":
    sys.exit(main())
