"""Report an import's progress to the bot, from a shell script (start, batch, finish).

    RUN=$(migration-guard report start "tickets 2019" --total-records 120000 --require-paused)
    migration-guard report batch "$RUN" 7 --ok 995 --failed 5 --error "ticket 88: invalid email"
    migration-guard report finish "$RUN"

GUARD_API_URL (default http://127.0.0.1:$PORT) and GUARD_API_TOKEN come from the environment.
Exit status: 0 done, 1 the API refused or could not be reached, 2 bad usage, 3 not safe to import
(`start --require-paused` while the guard is not paused).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from bot.client import GuardClient, GuardClientError, UnsafeToImport

NAME = "report"
USAGE = "report start NAME | report batch RUN_ID BATCH --ok N [--failed N] | report finish RUN_ID"
EXIT_UNSAFE = 3


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the bot's base URL (default: GUARD_API_URL or http://127.0.0.1:$PORT)")
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="start a run and print its id", parents=[common])
    start.add_argument("name", help="what is imported, e.g. 'zendesk tickets 2019'")
    start.add_argument("--total-records", type=_count, help="records the import will send")
    start.add_argument("--total-batches", type=_count, help="batches the import will send")
    start.add_argument("--source", help="where the records come from")
    start.add_argument(
        "--require-paused",
        action="store_true",
        help=f"refuse (exit {EXIT_UNSAFE}) unless the guard is paused",
    )
    batch = actions.add_parser(
        "batch", help="report one batch (reporting a number again replaces it)", parents=[common]
    )
    batch.add_argument("run_id")
    batch.add_argument("batch", type=_count, help="the batch number")
    batch.add_argument("--ok", type=_count, required=True, help="records imported")
    batch.add_argument("--failed", type=_count, default=0, help="records that failed")
    batch.add_argument("--error", action="append", dest="errors", default=[], help="an error (repeatable)")
    batch.add_argument(
        "--record-id",
        action="append",
        dest="record_ids",
        default=[],
        help="an imported record id (repeatable)",
    )
    batch.add_argument("--record-ids-file", metavar="FILE", help="record ids, one a line ('-': stdin)")
    finish = actions.add_parser(
        "finish", help="finish a run (completed, or --status failed)", parents=[common]
    )
    finish.add_argument("run_id")
    finish.add_argument("--status", choices=["completed", "failed"], default="completed")


def main(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] | None = None,
    client: GuardClient | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    prefix = f"migration-guard report {args.action}"
    try:
        client = client or GuardClient(args.url, environ=environ)
    except GuardClientError as error:
        print(f"{prefix}: {error}", file=err)
        return 1
    try:
        answer = _act(args, client)
    except UnsafeToImport as error:
        print(f"{prefix}: refused: {error}", file=err)
        return EXIT_UNSAFE
    except (GuardClientError, OSError) as error:
        print(f"{prefix}: {error}", file=err)
        return 1
    finally:
        client.close()
    _print(args, answer, out, err)
    return 0


def _act(args: argparse.Namespace, client: GuardClient) -> dict[str, Any]:
    if args.action == "start":
        if args.require_paused:
            client.require_paused()
        return client.start_run(
            args.name, total_records=args.total_records, total_batches=args.total_batches, source=args.source
        )
    if args.action == "batch":
        return client.report_batch(
            args.run_id,
            args.batch,
            ok=args.ok,
            failed=args.failed,
            errors=args.errors,
            record_ids=[*args.record_ids, *_read_ids(args.record_ids_file)],
        )
    return client.finish_run(args.run_id, args.status)


def _read_ids(path: str | None) -> list[str]:
    if path is None:
        return []
    if path == "-":
        return [line.strip() for line in sys.stdin if line.strip()]
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def _print(args: argparse.Namespace, answer: dict[str, Any], out: TextIO, err: TextIO) -> None:
    if answer.get("warning") or (args.action == "start" and answer.get("safe_to_import") is False):
        state = answer.get("guard_state")
        print(f"migration-guard: warning: unguarded import (guard {state}): automations are on", file=err)
    if args.json:
        print(json.dumps(answer), file=out)
    elif args.action == "start":
        print(answer["id"], file=out)
    elif args.action == "finish":
        print(
            f"{answer['id']} {answer['status']}: {answer['ok']} ok, {answer['failed']} failed, "
            f"{answer['batches']} batches",
            file=out,
        )
