"""How many batch reports per second does `migration-guard serve` ingest, and does Slack stay calm?

Runs `migration-guard serve` (SQLite file, sandbox platform, HTTP) as a subprocess whose SLACK_API_URL
points at the fake Slack served in this process. One import run; N batch reports from C concurrent
clients (each its own keep-alive connection), out of order, a share of them re-reports of a batch with
new figures (the later report must replace the earlier one). Then the run is finished and the final
message awaited. Prints reports/s, latency percentiles, chat.update calls against elapsed seconds, and
whether the totals (API and the final Slack message) are exact. Exits 1 when a target is missed.

    python benchmarks/progress_ingest.py [--reports 20000] [--clients 20] [--duplicates 0.05]
        [--slack-latency 0.05] [--slack-per-second 0] [--database-url URL]

Targets (2-core machine): >= 1,000 reports/s; chat.update calls <= elapsed seconds + 2; totals exact.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakes.slack import FakeSlack, serve_in_thread  # noqa: E402

TOKEN = "bench-api-token"
CHANNEL = "C0MIGRATION"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Plan:
    """Each client owns the batch numbers congruent to its index; what it sent last is the truth."""

    reports: list[list[tuple[int, int, int]]]
    expected: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def totals(self) -> tuple[int, int, int]:
        ok = sum(o for o, _ in self.expected.values())
        failed = sum(f for _, f in self.expected.values())
        return ok, failed, len(self.expected)


def make_plan(reports: int, clients: int, duplicates: float, seed: int = 7) -> Plan:
    rng = random.Random(seed)
    repeats = int(reports * duplicates)
    unique = reports - repeats
    plan = Plan(reports=[[] for _ in range(clients)])
    for number in range(unique):
        plan.reports[number % clients].append((number, 0, 0))
    for client, own in enumerate(plan.reports):
        rng.shuffle(own)  # out of order
        for _ in range(repeats // clients + (1 if client < repeats % clients else 0)):
            position = rng.randrange(1, len(own) + 1)
            own.insert(position, (rng.choice(own[:position])[0], 0, 0))  # a re-report, later
        for index, (number, _, _) in enumerate(own):
            failed = 1 if rng.random() < 0.01 else 0
            own[index] = (number, 100 - failed - rng.randrange(3), failed)
            plan.expected[number] = own[index][1:]
    return plan


async def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"serve exited with {proc.returncode}; see its log")
            try:
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("serve did not become healthy in time")


async def client_loop(
    base: str, run_id: str, reports: list[tuple[int, int, int]], latencies: list[float], errors: list[str]
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    connector = aiohttp.TCPConnector(limit=1)  # one import process, one keep-alive connection
    async with aiohttp.ClientSession(base_url=base, headers=headers, connector=connector) as session:
        for number, ok, failed in reports:
            body = {"batch": number, "ok": ok, "failed": failed, "record_ids": [f"rec-{number}"]}
            if failed:
                body["errors"] = [f"record rec-{number}-x: invalid requester email"]
            started = time.perf_counter()
            async with session.post(f"/api/v1/runs/{run_id}/batches", json=body) as response:
                await response.read()
                if response.status != 200:
                    errors.append(f"{response.status}: {await response.text()}")
            latencies.append(time.perf_counter() - started)


async def call(base: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.request(method, f"{base}{path}", json=body) as response,
    ):
        data: dict[str, Any] = await response.json()
        if response.status >= 400:
            raise SystemExit(f"{method} {path}: {response.status} {data}")
        return data


async def final_message(fake: FakeSlack, run_id: str, expect: str, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until the run's message shows the finished run and the summary is in its thread."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in fake.messages(CHANNEL):
            replies = fake.replies(CHANNEL, message["ts"])
            summarised = any("Import completed" in reply["text"] for reply in replies)
            if run_id in str(message["blocks"]) and expect in message["text"] and summarised:
                return message
        await asyncio.sleep(0.05)
    shown = [
        (m["text"], [r["text"][:60] for r in fake.replies(CHANNEL, m["ts"])]) for m in fake.messages(CHANNEL)
    ]
    raise SystemExit(f"the final message never appeared in the fake Slack; it shows {shown}")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (Linux /proc), to tell a slow server from a busy machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


@contextmanager
def serve_process(env: dict[str, str], workdir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`migration-guard serve` in a subprocess, its output in workdir/serve.log."""
    with open(workdir / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def bench(args: argparse.Namespace) -> int:
    plan = make_plan(args.reports, args.clients, args.duplicates)
    fake = FakeSlack()
    if args.slack_latency:
        fake.set_latency("chat.update", args.slack_latency)
    if args.slack_per_second:
        fake.rate_limit("chat.update", per_second=args.slack_per_second, retry_after=1)
    workdir = Path(tempfile.mkdtemp(prefix="progress-bench-"))
    port = free_port()
    with serve_in_thread(fake):
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'guard.db'}",
            "SLACK_BOT_TOKEN": fake.bot_token,
            "SLACK_SIGNING_SECRET": "bench-signing-secret",
            "SLACK_API_URL": fake.api_url,
            "GUARD_CHANNEL": CHANNEL,
            "GUARD_API_TOKEN": TOKEN,
            "GUARD_PLATFORM": "sandbox",
            "PORT": str(port),
        }
        env.pop("SLACK_APP_TOKEN", None)
        with serve_process(env, workdir, port) as proc:
            base = f"http://127.0.0.1:{port}"
            code = asyncio.run(measure(args, plan, fake, base, proc))
    if code:
        print(f"(serve log: {workdir / 'serve.log'})")
    return code


async def measure(
    args: argparse.Namespace, plan: Plan, fake: FakeSlack, base: str, proc: subprocess.Popen[bytes]
) -> int:
    await wait_healthy(base, proc)
    pid = proc.pid
    ok, failed, batches = plan.totals
    run = await call(base, "POST", "/api/v1/runs", {"name": "benchmark import", "total_records": ok + failed})
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    cpu_before, client_before = cpu_seconds(pid), time.process_time()
    await asyncio.gather(*(client_loop(base, run["id"], own, latencies, errors) for own in plan.reports))
    ingest_seconds = time.perf_counter() - started
    cpu_after, client_cpu = cpu_seconds(pid), time.process_time() - client_before
    await call(base, "POST", f"/api/v1/runs/{run['id']}/finish", {"status": "completed"})
    expect = f"{ok:,} ok, {failed:,} failed"
    message = await final_message(fake, run["id"], expect)
    elapsed = time.perf_counter() - started
    stored = await call(base, "GET", f"/api/v1/runs/{run['id']}")

    updates = fake.calls("chat.update")
    accepted = len(latencies) - len(errors)
    api_exact = (stored["ok"], stored["failed"], stored["batches"]) == (ok, failed, batches)
    slack_exact = expect in message["text"]
    rate = accepted / ingest_seconds
    replies = fake.replies(CHANNEL, message["ts"])
    share = f"{args.duplicates:.0%} re-reports"
    print(f"reports: {len(latencies)} from {args.clients} clients ({share}), errors: {len(errors)}")
    for line in errors[:5]:
        print(f"  {line}")
    print(f"accepted per second: {rate:,.0f} (ingest took {ingest_seconds:.2f}s)")
    if cpu_before is not None and cpu_after is not None:
        used = cpu_after - cpu_before
        per_report = used / len(latencies) * 1e6
        print(
            f"server CPU: {used:.1f}s, {per_report:.0f} us per report; this process (clients, fake Slack): "
            f"{client_cpu:.1f}s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    print(f"latency ms: p50 {p50:.1f}  p99 {p99:.1f}  max {max(latencies) * 1000:.1f}")
    print(
        f"chat.update calls: {len(updates)} ({sum(1 for c in updates if c.status == 429)} answered 429) "
        f"over {elapsed:.2f}s elapsed (first report to final message)"
    )
    print(f"thread replies: {[r['text'][:40] for r in replies]}")
    print(
        f"totals: expected ok={ok} failed={failed} batches={batches}; API ok={stored['ok']} "
        f"failed={stored['failed']} batches={stored['batches']}; exact API={api_exact} Slack={slack_exact}"
    )
    targets = {
        ">= 1,000 reports/s": rate >= 1000,
        "chat.update calls <= elapsed s + 2": len(updates) <= elapsed + 2,
        "totals exact": api_exact and slack_exact and not errors,
    }
    for name, met in targets.items():
        print(f"  {'PASS' if met else 'FAIL'} {name}")
    return 0 if all(targets.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--duplicates", type=float, default=0.05, help="share of reports that re-report a batch"
    )
    parser.add_argument(
        "--slack-latency", type=float, default=0.05, help="seconds the fake takes per chat.update"
    )
    parser.add_argument(
        "--slack-per-second", type=float, default=0, help="rate-limit chat.update (429) above this"
    )
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    return bench(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
