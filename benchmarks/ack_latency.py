"""How fast does `migration-guard serve` acknowledge a slash command, next to a minimal Bolt app?

Runs three processes on loopback: the fake Slack Web API, `migration-guard serve` (SQLite, sandbox
platform, HTTP mode), and a minimal Bolt AsyncApp that only acks. Sends the same signed slash
commands to each (concurrency 20) and prints p50/p99 acknowledgement times.

    python benchmarks/ack_latency.py [--requests 500] [--concurrency 20] [--text status]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.slack_signing import signed_headers, slash_command_body  # noqa: E402

SECRET = "bench-signing-secret"
TOKEN = "xoxb-fake-bot-token"

MINIMAL_APP = """
import sys, uvicorn
from slack_bolt.async_app import AsyncApp
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.routing import Route

app = AsyncApp(client=AsyncWebClient(token=sys.argv[3], base_url=sys.argv[4]), signing_secret=sys.argv[2])

@app.command("/migration")
async def command(ack):
    await ack(text="ok")

handler = AsyncSlackRequestHandler(app)

async def events(request):
    return await handler.handle(request)

uvicorn.run(Starlette(routes=[Route("/slack/events", events, methods=["POST"])]),
            host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

FAKE_SLACK = """
import sys, time
sys.path.insert(0, sys.argv[2])
from tests.fakes.slack import FakeSlack, serve_in_thread
fake = FakeSlack(bot_token=sys.argv[3])
with serve_in_thread(fake, port=int(sys.argv[1])):
    print("ready", flush=True)
    while True:
        time.sleep(3600)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None):
    proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


async def measure(url: str, args: argparse.Namespace, response_url: str) -> list[float]:
    requests, concurrency, text = args.requests, args.concurrency, args.text
    slots = asyncio.Semaphore(concurrency)
    timings: list[float] = []
    async with httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(i: int) -> None:
            body = slash_command_body(text=text, user_id=f"U0USER{i % 50:04d}", response_url=response_url)
            async with slots:
                headers = signed_headers(SECRET, body)
                started = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                timings.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{url}: HTTP {response.status_code} {response.text[:200]}")

        await asyncio.gather(*(one(i) for i in range(20)))  # warm-up, not counted
        timings.clear()
        await asyncio.gather(*(one(i) for i in range(requests)))
    return timings


def summary(name: str, timings: list[float]) -> tuple[float, float]:
    ordered = sorted(timings)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    print(
        f"  {name:<28} n={len(ordered):>4}  p50 {p50:7.1f} ms   p99 {p99:7.1f} ms"
        f"   max {ordered[-1] * 1000:7.1f} ms"
    )
    return p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--text", default="status", help="the slash command's text (default: status)")
    args = parser.parse_args()

    slack_port, guard_port, minimal_port = free_port(), free_port(), free_port()
    slack_url = f"http://127.0.0.1:{slack_port}/"
    response_url = f"{slack_url}response/bench"
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": f"{slack_url}api/",
            "GUARD_CHANNEL": "C0MIGRATION",
            "GUARD_APPROVERS": "U0MANAGER1",
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "GUARD_PLATFORM": "sandbox",
            "PORT": str(guard_port),
        }
        env.pop("SLACK_APP_TOKEN", None)
        guard_cmd = [str(Path(sys.executable).with_name("migration-guard")), "serve"]
        fake_cmd = [sys.executable, "-c", FAKE_SLACK, str(slack_port), str(REPO), TOKEN]
        minimal_cmd = [
            sys.executable,
            "-c",
            MINIMAL_APP,
            str(minimal_port),
            SECRET,
            TOKEN,
            f"{slack_url}api/",
        ]
        with process(fake_cmd):
            wait_until_up(f"{slack_url}api/api.test")
            # One server at a time, so neither measurement pays for the other's background work.
            with process(guard_cmd, env):
                wait_until_up(f"http://127.0.0.1:{guard_port}/healthz")
                guard = asyncio.run(
                    measure(f"http://127.0.0.1:{guard_port}/slack/events", args, response_url)
                )
            with process(minimal_cmd):
                wait_until_up(f"http://127.0.0.1:{minimal_port}/slack/events")
                minimal = asyncio.run(
                    measure(f"http://127.0.0.1:{minimal_port}/slack/events", args, response_url)
                )
    print(
        f"Slash-command acknowledgement, {args.requests} signed requests, "
        f"concurrency {args.concurrency}, text {args.text!r}:"
    )
    _, guard_p99 = summary("migration-guard serve", guard)
    _, minimal_p99 = summary("minimal Bolt app (ack only)", minimal)
    ratio = guard_p99 / minimal_p99
    verdict = "meets" if guard_p99 < 300 and ratio <= 1.5 else "MISSES"
    print(f"  p99 ratio guard/minimal: {ratio:.2f}  ({verdict} the target: p99 < 300 ms and within 1.5x)")


if __name__ == "__main__":
    main()
