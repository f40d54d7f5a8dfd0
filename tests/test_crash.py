"""Crash test: `migration-guard pause --yes` applying 300 changes is killed with SIGKILL at random
points, `migration-guard resume` (killed again, more than once) finishes it, and no automation is
written twice — including the ones whose PUT had landed when the process died. Then the same for
`restore --yes`, which ends with every automation as it was before the pause.

The fake Zendesk runs in its own process (so it outlives every kill and keeps answering calls the
dead process had sent); the test reads its counters over `GET /_fake/state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.zendesk import VOLATILE
from bot import store
from bot.db import connect
from bot.models import Change, ChangeRequest, ChangeStatus, GuardStatus, RequestStatus
from tests.conftest import REPO

pytestmark = pytest.mark.slow

CHANGES = 300
SCRIPT = Path(sys.executable).with_name("migration-guard")


def serve_fake(count: int, seed: int) -> None:
    """Run in a child process: a fake account of `count` automations that a disable-mode pause
    changes every one of (all rules active; SLA policies are exempted), with 10 ms of latency so
    that some PUTs are in flight at the moment of a kill."""
    import threading

    from tests.fakes.zendesk import FakeZendesk, serve_in_thread

    fake = FakeZendesk(rate_limit=None, latency=0.01, seed=seed)
    for kind, object_id in fake.seed_random(count, seed):
        if kind != "sla_policy" and not fake.get(kind, object_id)["active"]:
            fake.edit_as_person(kind, object_id, active=True)
    with serve_in_thread(fake) as url:
        print(f"listening on {url}", flush=True)
        threading.Event().wait()


@pytest.fixture
async def fake_url() -> AsyncIterator[str]:
    code = f"from tests.test_crash import serve_fake; serve_fake({CHANGES}, 7)"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line.startswith("listening on "), line
        yield line.removeprefix("listening on ").strip()
    finally:
        process.kill()
        await process.wait()


def cli_env(database_url: str, fake_url: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": database_url,
        "GUARD_PLATFORM": "zendesk",
        "ZENDESK_URL": fake_url,
        "ZENDESK_EMAIL": "agent@example.com",
        "ZENDESK_API_TOKEN": "test-api-token",
        "ZENDESK_RATE_LIMIT": "100000/min",
    }


async def fake_state(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get("/_fake/state")).raise_for_status().json()


async def total_writes(client: httpx.AsyncClient) -> int:
    return sum((await fake_state(client))["writes"].values())


async def run_cli(
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    *,
    client: httpx.AsyncClient,
    kill_after_writes: int | None = None,
    kill_after_seconds: float | None = None,
) -> tuple[int | None, str]:
    """Run the console script; SIGKILL it once the fake has taken `kill_after_writes` writes (then
    a few more random milliseconds, to land between a PUT and its journal entry) or after
    `kill_after_seconds`. Returns (exit status or None when killed, output)."""
    log = cwd / f"run-{random.random():.6f}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(SCRIPT), *args, env=env, cwd=cwd, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
        started = asyncio.get_running_loop().time()
        killed = False
        while process.returncode is None:
            elapsed = asyncio.get_running_loop().time() - started
            due = kill_after_seconds is not None and elapsed >= kill_after_seconds
            if not due and kill_after_writes is not None:
                due = await total_writes(client) >= kill_after_writes
                if due:
                    await asyncio.sleep(random.uniform(0, 0.03))
            if due and process.returncode is None:
                process.send_signal(signal.SIGKILL)
                killed = True
                await process.wait()
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.01)
            if elapsed > 60:
                process.kill()
                raise AssertionError(f"{args} did not finish in 60 s: {log.read_text()}")
    return (None if killed else process.returncode), log.read_text()


async def requests_of(database_url: str, kind: str) -> list[ChangeRequest]:
    db = connect(database_url)
    try:
        async with db.session() as session:
            found = await store.requests_in(session, statuses=list(RequestStatus))
    finally:
        await db.dispose()
    return [r for r in found if r.kind == kind]


async def journal(database_url: str, kind: str) -> tuple[list[ChangeRequest], list[Change], str]:
    """The requests of `kind`, the changes of the last one, and the guard's state."""
    requests = await requests_of(database_url, kind)
    db = connect(database_url)
    try:
        async with db.session() as session:
            changes = await store.request_changes(session, request_id=requests[-1].id) if requests else []
            guard = await store.get_guard(session, target="zendesk", platform="zendesk")
            await session.commit()
    finally:
        await db.dispose()
    return requests, changes, guard.state


def live_objects(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fake's objects as the adapter defines them (volatile fields removed), by kind/id."""
    return {
        f"{kind}/{obj['id']}": {k: v for k, v in obj.items() if k not in VOLATILE}
        for kind, objects in state["objects"].items()
        for obj in objects
    }


class Crasher:
    """Runs one break-glass command (`pause --yes` or `restore --yes`) to completion through
    several SIGKILLs, and records what each kill left behind."""

    def __init__(self, database_url: str, fake_url: str, cwd: Path, client: httpx.AsyncClient, seed: int):
        self.database_url, self.cwd, self.client = database_url, cwd, client
        self.env = cli_env(database_url, fake_url)
        self.rng = random.Random(seed)
        self.kills: list[int] = []  # the fake's total writes at each kill
        self.in_flight: list[tuple[int, int]] = []  # (left in_flight, of which the fake holds `after`)

    async def run(self, kind: str, start: list[str], *, resumes: int = 3) -> str:
        begin = await total_writes(self.client)
        # First kill: any moment of the command (start-up, snapshot, storing the request, the
        # first writes), surely before it ends.
        status, output = await run_cli(
            start,
            self.env,
            self.cwd,
            client=self.client,
            kill_after_seconds=self.rng.uniform(0.3, 2.0),
            kill_after_writes=begin + self.rng.randint(1, 60),
        )
        assert status is None, output
        await self._killed(kind)
        # Then kills mid-apply, each some writes after the previous one; a command killed before
        # it stored its request left nothing, so it is started again instead of resumed.
        end = begin + CHANGES
        for _ in range(resumes):
            threshold = min(end - 5, await total_writes(self.client) + self.rng.randint(10, 70))
            verb = ["resume"] if await requests_of(self.database_url, kind) else start
            status, output = await run_cli(
                verb, self.env, self.cwd, client=self.client, kill_after_writes=threshold
            )
            if status is None:
                await self._killed(kind)
            else:
                assert status == 0, output
        verb = ["resume"] if await requests_of(self.database_url, kind) else start
        status, output = await run_cli(verb, self.env, self.cwd, client=self.client)
        assert status == 0, output
        return output

    async def _killed(self, kind: str) -> None:
        self.kills.append(await total_writes(self.client))
        _, changes, _ = await journal(self.database_url, kind)
        live = live_objects(await fake_state(self.client))
        left = [c for c in changes if c.status == ChangeStatus.IN_FLIGHT]
        landed = sum(live[f"{c.kind}/{c.automation_id}"] == c.after for c in left)
        self.in_flight.append((len(left), landed))


async def test_killed_pause_and_restore_resume_and_write_every_automation_exactly_once(
    database_url: str, fake_url: str, tmp_path: Path
) -> None:
    seed = random.randrange(1_000_000)
    async with httpx.AsyncClient(base_url=fake_url) as client:
        original = live_objects(await fake_state(client))
        crasher = Crasher(database_url, fake_url, tmp_path, client, seed)

        await crasher.run("pause", ["pause", "--yes"])
        paused = await fake_state(client)
        requests, changes, guard = await journal(database_url, "pause")
        assert [r.status for r in requests] == [RequestStatus.APPLIED], f"seed {seed}"
        assert guard == GuardStatus.PAUSED
        assert_each_written_once(changes, paused, writes=1, seed=seed)

        await crasher.run("restore", ["restore", "--yes"], resumes=2)
        restored = await fake_state(client)
        requests, changes, guard = await journal(database_url, "restore")
        assert [r.status for r in requests] == [RequestStatus.APPLIED], f"seed {seed}"
        assert guard == GuardStatus.LIVE
        assert_each_written_once(changes, restored, writes=2, seed=seed)
        assert live_objects(restored) == original, f"back to the snapshot (seed {seed})"

    print(f"seed {seed}: writes at each kill {crasher.kills}; (in flight, landed) {crasher.in_flight}")
    mid_apply = [w for w in crasher.kills if w % CHANGES > 0]
    assert len(mid_apply) >= 4, f"kills should land mid-apply (seed {seed}): writes at kills {crasher.kills}"
    assert any(landed for _, landed in crasher.in_flight), (
        f"some kill should catch a PUT that landed but was never journaled (seed {seed})"
    )


def assert_each_written_once(changes: list[Change], state: dict[str, Any], *, writes: int, seed: int) -> None:
    """Every change done, each automation written once by this request (`writes` in all so far),
    nothing else written, and the platform holding each change's `after`."""
    assert len(changes) == CHANGES
    assert store.count_by(c.status for c in changes) == {ChangeStatus.DONE: CHANGES}, f"seed {seed}"
    planned = {f"{c.kind}/{c.automation_id}" for c in changes}
    assert state["writes"] == dict.fromkeys(planned, writes), (
        f"each automation written exactly once (seed {seed})"
    )
    live = live_objects(state)
    for change in changes:
        assert live[f"{change.kind}/{change.automation_id}"] == change.after, f"{change.name} (seed {seed})"
