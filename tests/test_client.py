"""The Python client and `migration-guard report`, against the real API served by uvicorn on this
test's event loop (the synchronous client runs in a worker thread), plus the client's retry rules
against a scripted transport."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from bot import api
from bot.cli import build_parser
from bot.client import ApiError, GuardClient, GuardClientError, ImportRun, UnsafeToImport, guarded_import
from bot.deps import Deps
from bot.http import create_http_app
from bot.models import GuardStatus
from bot.progress import ProgressService
from commands import report
from tests.test_progress import set_guard, sqlite_only

TOKEN = "test-api-token"


@pytest.fixture
async def sqlite_deps(sqlite_url: str) -> AsyncIterator[Deps]:
    async with sqlite_only(sqlite_url) as deps:
        yield deps


@pytest.fixture
async def api_url(sqlite_deps: Deps) -> AsyncIterator[str]:
    service = ProgressService(sqlite_deps)
    app = create_http_app(sqlite_deps, None, api.routes(sqlite_deps, None, service=service))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await task
    sock.close()
    await service.aclose()


def client(url: str) -> GuardClient:
    return GuardClient(url, TOKEN)


async def in_thread(work: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(work)


async def run_totals(deps: Deps, run_id: str) -> tuple[int, int, int, str]:
    view = await ProgressService(deps).run_view(run_id)
    return view.ok, view.failed, view.batches, view.status


# --------------------------------------------------------------------------------------------------
# ImportRun / guarded_import


async def test_import_run_reports_and_completes(api_url, sqlite_deps):
    def script() -> ImportRun:
        with ImportRun("tickets", base_url=api_url, token=TOKEN, total_records=50) as run:
            for _ in range(4):
                run.batch(ok=10, failed=1, record_ids=["t-1"])
            run.batch(1, ok=5, failed=0)  # batch 1 again: replaces
        return run

    run = await in_thread(script)
    assert run.id is not None and run.result is not None
    assert await run_totals(sqlite_deps, run.id) == (35, 3, 4, "completed")
    assert run.warning and "unguarded" in run.warning, "the guard is live"


async def test_an_exception_finishes_the_run_as_failed_and_propagates(api_url, sqlite_deps):
    started: list[str] = []

    def script() -> None:
        with ImportRun("broken", base_url=api_url, token=TOKEN) as run:
            started.append(run.id or "")
            run.batch(ok=3)
            raise KeyError("source file vanished")

    with pytest.raises(KeyError, match="vanished"):
        await in_thread(script)
    assert await run_totals(sqlite_deps, started[0]) == (3, 0, 1, "failed")


async def test_guarded_import_refuses_while_live_and_starts_nothing(api_url, sqlite_deps):
    for state in (GuardStatus.LIVE, GuardStatus.PAUSING, GuardStatus.RESTORING):
        await set_guard(sqlite_deps, state)
        with pytest.raises(UnsafeToImport, match=state.value):
            await in_thread(lambda: guarded_import("refused", base_url=api_url, token=TOKEN).__enter__())
    async with sqlite_deps.db.engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM import_runs"))).scalar_one() == 0


async def test_guarded_import_runs_while_paused(api_url, sqlite_deps):
    await set_guard(sqlite_deps, GuardStatus.PAUSED)

    def script() -> ImportRun:
        with guarded_import("safe", base_url=api_url, token=TOKEN) as run:
            run.batch(ok=7)
        return run

    run = await in_thread(script)
    assert run.warning is None
    assert await run_totals(sqlite_deps, run.id or "") == (7, 0, 1, "completed")


async def test_api_errors_carry_code_and_field(api_url):
    def bad() -> None:
        with client(api_url) as guard:
            guard.report_batch("run_nope", 1, ok=1)

    with pytest.raises(ApiError) as missing:
        await in_thread(bad)
    assert (missing.value.status, missing.value.code) == (404, "not_found")

    def invalid() -> None:
        with client(api_url) as guard:
            guard.report_batch(guard.start_run("x")["id"], -1, ok=1)

    with pytest.raises(ApiError) as refused:
        await in_thread(invalid)
    assert (refused.value.status, refused.value.field) == (422, "batch")


def test_the_token_is_required_and_read_from_the_environment():
    with pytest.raises(GuardClientError, match="GUARD_API_TOKEN"):
        GuardClient(environ={})
    configured = GuardClient(environ={"GUARD_API_TOKEN": "t", "PORT": "4123"})
    assert configured.base_url == "http://127.0.0.1:4123"
    explicit = GuardClient(environ={"GUARD_API_TOKEN": "t", "GUARD_API_URL": "https://guard.example/"})
    assert explicit.base_url == "https://guard.example"


# --------------------------------------------------------------------------------------------------
# retries (scripted transport, no sleeping)


def scripted(answers: list[Any]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


def test_a_batch_is_retried_on_5xx_429_and_timeouts():
    transport, seen = scripted(
        [
            httpx.Response(503, json={"error": "x", "detail": "down"}),
            httpx.ReadTimeout("slow"),
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(200, json={"id": "run_1", "batch": 3}),
        ]
    )
    waits: list[float] = []
    guard = GuardClient("http://guard.test", "t", transport=transport, sleep=waits.append)
    assert guard.report_batch("run_1", 3, ok=1)["batch"] == 3
    assert len(seen) == 4 and waits[-1] == 7.0, "Retry-After is honoured"
    assert {r.content for r in seen} == {seen[0].content}, "the same report each time (idempotent)"


def test_a_start_is_not_resent_once_it_may_have_arrived():
    transport, seen = scripted([httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
    guard = GuardClient("http://guard.test", "t", transport=transport, sleep=lambda _: None)
    with pytest.raises(GuardClientError, match="cannot reach"):
        guard.start_run("once")
    assert len(seen) == 2, "a refused connection is retried; a timeout after sending is not"


def test_a_retried_finish_that_already_happened_is_success():
    run = {"id": "run_1", "status": "completed", "ok": 1, "failed": 0, "batches": 1}
    transport, _ = scripted(
        [
            httpx.ReadTimeout("slow"),
            httpx.Response(409, json={"error": "conflict", "detail": "already completed", "field": None}),
            httpx.Response(200, json=run),
        ]
    )
    guard = GuardClient("http://guard.test", "t", transport=transport, sleep=lambda _: None)
    assert guard.finish_run("run_1") == run


def test_retries_give_up_with_the_api_error():
    transport, seen = scripted([httpx.Response(500, json={"error": "internal", "detail": "boom"})] * 4)
    guard = GuardClient("http://guard.test", "t", transport=transport, retries=3, sleep=lambda _: None)
    with pytest.raises(ApiError, match="500 internal: boom"):
        guard.report_batch("run_1", 1, ok=1)
    assert len(seen) == 4


# --------------------------------------------------------------------------------------------------
# migration-guard report


def cli(
    argv: list[str], url: str, token: str | None = TOKEN, client: GuardClient | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    environ = {"GUARD_API_URL": url, **({"GUARD_API_TOKEN": token} if token else {})}
    args = build_parser().parse_args(["report", *argv])
    code = report.main(args, environ=environ, client=client, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def test_report_start_batch_finish(api_url, sqlite_deps):
    code, out, err = await in_thread(lambda: cli(["start", "tickets 2019", "--total-records", "20"], api_url))
    assert code == 0 and out.strip().startswith("run_")
    assert "unguarded import" in err
    run_id = out.strip()
    for number, ok in [(2, 5), (1, 4), (2, 6)]:
        code, _, _ = await in_thread(
            lambda n=number, o=ok: cli(["batch", run_id, str(n), "--ok", str(o), "--error", "x"], api_url)
        )
        assert code == 0
    code, out, _ = await in_thread(lambda: cli(["finish", run_id, "--status", "failed"], api_url))
    assert code == 0 and out.strip() == f"{run_id} failed: 10 ok, 0 failed, 2 batches"
    assert await run_totals(sqlite_deps, run_id) == (10, 0, 2, "failed")


async def test_report_start_require_paused(api_url, sqlite_deps):
    code, out, err = await in_thread(lambda: cli(["start", "x", "--require-paused"], api_url))
    assert (code, out) == (report.EXIT_UNSAFE, "")
    assert "refused: not safe to import" in err and "live" in err
    await set_guard(sqlite_deps, GuardStatus.PAUSED)
    code, out, err = await in_thread(lambda: cli(["start", "x", "--require-paused", "--json"], api_url))
    assert code == 0 and '"safe_to_import": true' in out and err == ""


async def test_report_errors_exit_non_zero_with_a_clear_message(api_url):
    code, _, err = await in_thread(lambda: cli(["batch", "run_nope", "1", "--ok", "1"], api_url))
    assert code == 1 and "404 not_found: no import run run_nope" in err
    code, _, err = await in_thread(lambda: cli(["finish", "run_nope"], api_url, token=None))
    assert code == 1 and "GUARD_API_TOKEN is not set" in err
    code, _, err = await in_thread(lambda: cli(["start", "x"], api_url, token="wrong"))
    assert code == 1 and "401 unauthorized" in err
    unreachable = GuardClient("http://127.0.0.1:9", TOKEN, sleep=lambda _: None)
    code, _, err = await in_thread(lambda: cli(["start", "x"], "", client=unreachable))
    assert code == 1 and "cannot reach the progress API" in err


async def test_the_console_script_prints_the_run_id(api_url, sqlite_deps):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "report",
        "start",
        "from a shell",
        env={**os.environ, "GUARD_API_URL": api_url, "GUARD_API_TOKEN": TOKEN, "DATABASE_URL": "bad://x"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err
    run_id = out.decode().strip()
    assert run_id.startswith("run_")
    assert (await run_totals(sqlite_deps, run_id))[3] == "running"
