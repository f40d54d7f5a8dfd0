"""How close does a pause get to the platform's rate limit, and what does a big snapshot cost?

Runs the fake Zendesk in its own process on loopback (a 2,500/min sliding-window limit and 50 ms of
latency per call, like a Zendesk Suite Enterprise account far away), and the guard engine in this
one (SQLite file, or PostgreSQL with --database-url), with `ZENDESK_RATE_LIMIT=2500/min`.

1. Snapshot 5,000 automations: wall time, peak Python allocations (tracemalloc, a second run) and
   the process's peak RSS.
2. Pause 1,000 active automations (disable mode, approved at once, as `pause --yes` does): the
   snapshot + plan time, then the apply (approved -> applied) next to the rate-limit ideal
   N / rate, their ratio (target <= 1.10), 429s received and failures.

    python benchmarks/apply_throughput.py [--changes 1000] [--snapshot 5000] [--rate 2500]
        [--latency 0.05] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot import engine  # noqa: E402
from bot.deps import Deps, build_deps  # noqa: E402
from bot.models import RequestStatus  # noqa: E402
from bot.planning import PauseOptions  # noqa: E402
from bot.settings import Settings, parse_rate  # noqa: E402


def serve_fake(count: int, rate: int, latency: float, all_active: bool) -> None:
    """The child process: a fake account of `count` automations (every rule active when
    `all_active`, so a disable-mode pause changes each one)."""
    from tests.fakes.zendesk import FakeZendesk, serve_in_thread

    fake = FakeZendesk(rate_limit=rate, rate_window=60.0, latency=latency, seed=1)
    for kind, object_id in fake.seed_random(count, seed=1):
        if all_active and kind != "sla_policy" and not fake.get(kind, object_id)["active"]:
            fake.edit_as_person(kind, object_id, active=True)
    with serve_in_thread(fake) as url:
        print(f"listening on {url}", flush=True)
        threading.Event().wait()


@contextmanager
def fake_zendesk(count: int, rate: int, latency: float, all_active: bool) -> Iterator[str]:
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); from benchmarks.apply_throughput import serve_fake; "
        f"serve_fake({count}, {rate}, {latency}, {all_active})"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the fake Zendesk did not start: {line!r}")
        yield line.removeprefix("listening on ").strip()
    finally:
        process.kill()
        process.wait()


def settings_for(url: str, database_url: str, rate: int) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        guard_platform="zendesk",
        zendesk_url=url,
        zendesk_email="agent@example.com",
        zendesk_api_token="test-api-token",  # type: ignore[arg-type]
        zendesk_oauth_token=None,
        zendesk_rate_limit=f"{rate}/min",
    )


async def fake_state(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return (await client.get("/_fake/state")).raise_for_status().json()


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def snapshot_figures(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    with fake_zendesk(args.snapshot, args.rate, args.latency, all_active=False) as url:
        deps = await build_deps(settings_for(url, database_url, args.rate))
        try:
            rss_before = rss_mib()
            started = time.perf_counter()
            automations = await deps.platform.list_automations()
            read = time.perf_counter()
            await engine.save_snapshot(deps, automations, actor="benchmark")  # = take_snapshot, timed in two
            stored = time.perf_counter()
            rss_after = rss_mib()
            tracemalloc.start()
            await engine.take_snapshot(deps, actor="benchmark")
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        finally:
            await deps.aclose()
    return {
        "automations": len(automations),
        "seconds": stored - started,
        "read_seconds": read - started,
        "store_seconds": stored - read,
        "peak_mib": peak / 2**20,
        "rss_before": rss_before,
        "rss_after": rss_after,
    }


async def apply_figures(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    with fake_zendesk(args.changes, args.rate, args.latency, all_active=True) as url:
        deps = await build_deps(settings_for(url, database_url, args.rate))
        try:
            started = time.perf_counter()
            outcome = await engine.request_pause(deps, PauseOptions(), actor="benchmark", approved=True)
            planned = time.perf_counter()
            result = await engine.apply(deps, outcome.request.id, actor="benchmark")
            applied = time.perf_counter()
            state = await fake_state(url)
            stats = _stats(deps)
        finally:
            await deps.aclose()
    changes = len(result.changes)
    ideal = changes / parse_rate(f"{args.rate}/min")
    failed = sum(1 for c in result.changes if c.status != "done")
    twice = sum(1 for count in state["writes"].values() if count != 1)
    return {
        "changes": changes,
        "plan_seconds": planned - started,
        "apply_seconds": applied - planned,
        "ideal": ideal,
        "ratio": (applied - planned) / ideal,
        "throttled": state["throttled_count"],
        "requests": stats.requests if stats else None,
        "failures": failed,
        "written_twice": twice,
        "status": result.request.status,
    }


def _stats(deps: Deps) -> Any:
    http = getattr(deps.platform, "http", None)
    return getattr(http, "stats", None)


def report(args: argparse.Namespace, backend: str, snap: dict[str, Any], apply: dict[str, Any]) -> str:
    ok = apply["ratio"] <= 1.10 and apply["failures"] == 0 and apply["status"] == RequestStatus.APPLIED
    verdict = "met" if ok else "MISSED"
    return "\n".join(
        [
            f"Fake Zendesk over loopback: {args.rate}/min limit (60 s sliding window), "
            f"{args.latency * 1000:.0f} ms latency; database {backend}",
            "",
            f"Pause of {apply['changes']} automations (disable mode, ZENDESK_RATE_LIMIT={args.rate}/min)",
            f"  snapshot + plan              {apply['plan_seconds']:8.2f} s",
            f"  apply (approved -> applied)  {apply['apply_seconds']:8.2f} s",
            f"  rate-limit ideal (N / rate)  {apply['ideal']:8.2f} s",
            f"  ratio                        {apply['ratio']:8.3f}   (target <= 1.10: {verdict})",
            f"  HTTP requests sent           {apply['requests']:8d}",
            f"  429s received                {apply['throttled']:8d}",
            f"  failures                     {apply['failures']:8d}",
            f"  automations written twice    {apply['written_twice']:8d}",
            f"  request status               {apply['status']:>8}",
            "",
            f"Snapshot of {snap['automations']} automations",
            f"  wall time                    {snap['seconds']:8.2f} s",
            f"    reading the platform       {snap['read_seconds']:8.2f} s",
            f"    storing the snapshot       {snap['store_seconds']:8.2f} s",
            f"  peak Python memory           {snap['peak_mib']:8.1f} MiB (tracemalloc, a second snapshot)",
            f"  peak RSS of the process      {snap['rss_after']:8.1f} MiB "
            f"({snap['rss_before']:.1f} MiB before the snapshot)",
        ]
    )


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--snapshot", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=2500, help="requests per minute")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per call")
    parser.add_argument(
        "--database-url", help="an empty PostgreSQL database (default: SQLite files in a temporary directory)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        snapshot_db = args.database_url or f"sqlite:///{directory}/snapshot.db"
        apply_db = args.database_url or f"sqlite:///{directory}/apply.db"
        snap = await snapshot_figures(args, snapshot_db)
        apply = await apply_figures(args, apply_db)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(report(args, backend, snap, apply))
    return 0 if apply["ratio"] <= 1.10 and apply["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
