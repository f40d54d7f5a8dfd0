"""The progress API over HTTP (the real Starlette app, in-process): contracts, auth and input errors
(each a clear JSON error with nothing stored), exact totals, and the guard preflight."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bot import api
from bot.deps import Deps
from bot.http import MAX_BODY, create_http_app
from bot.models import GuardStatus, ImportBatch, ImportRun
from bot.progress import ProgressService
from tests.conftest import make_deps, make_settings
from tests.test_progress import set_guard, sqlite_only

TOKEN = "test-api-token"


@pytest.fixture
async def sqlite_deps(sqlite_url: str) -> AsyncIterator[Deps]:
    async with sqlite_only(sqlite_url) as deps:
        yield deps


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextlib.asynccontextmanager
async def client_for(deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    service = ProgressService(deps)
    app = create_http_app(deps, None, api.routes(deps, None, service=service))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://guard.test") as client:
        yield client
    await service.aclose()


@pytest.fixture
async def http(sandbox_deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(sandbox_deps) as client:
        yield client


@pytest.fixture
async def http_sqlite(sqlite_deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    """Errors raised before the database is reached: one backend is enough."""
    async with client_for(sqlite_deps) as client:
        yield client


async def counts(deps: Deps) -> tuple[int, int]:
    async with deps.db.engine.connect() as conn:
        runs = (await conn.execute(sa.select(sa.func.count()).select_from(ImportRun))).scalar_one()
        batches = (await conn.execute(sa.select(sa.func.count()).select_from(ImportBatch))).scalar_one()
    return runs, batches


async def start(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await http.post("/api/v1/runs", json={"name": "tickets 2019", **body}, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


def assert_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    # bot/http.py's BodyLimit renders 413 itself, without "field"; every other error names one (or null).
    assert body["error"] == code and body["detail"] and body.get("field") == field, body
    assert status == 413 or "field" in body
    return body


# --------------------------------------------------------------------------------------------------
# the happy path and the contract's names


async def test_a_run_from_start_to_finish(http, sandbox_deps):
    run = await start(http, total_records=300, total_batches=3, source="zendesk export")
    assert run["id"].startswith("run_")
    assert {k: run[k] for k in ("name", "ok", "failed", "batches", "total_records", "finished")} == {
        "name": "tickets 2019",
        "ok": 0,
        "failed": 0,
        "batches": 0,
        "total_records": 300,
        "finished": False,
    }
    batch = await http.post(
        f"/api/v1/runs/{run['id']}/batches",
        json={"batch": 1, "ok": 98, "failed": 2, "errors": ["t-9: bad email"], "record_ids": ["t-1"]},
        headers=AUTH,
    )
    assert batch.status_code == 200
    assert batch.json()["warning"].startswith("unguarded import"), "the guard is live"
    got = (await http.get(f"/api/v1/runs/{run['id']}", headers=AUTH)).json()
    assert (got["ok"], got["failed"], got["batches"], got["percent"]) == (98, 2, 1, 33.33)
    finished = await http.post(f"/api/v1/runs/{run['id']}/finish", json={"status": "failed"}, headers=AUTH)
    assert finished.status_code == 200
    assert (finished.json()["status"], finished.json()["finished"]) == ("failed", True)


async def test_start_answers_201_with_a_location(http_sqlite):
    response = await http_sqlite.post("/api/v1/runs", json={"name": "x"}, headers=AUTH)
    assert response.status_code == 201
    assert response.headers["location"] == f"/api/v1/runs/{response.json()['id']}"


async def test_finish_without_a_body_completes_the_run(http_sqlite):
    run = await start(http_sqlite)
    response = await http_sqlite.post(f"/api/v1/runs/{run['id']}/finish", headers=AUTH)
    assert response.status_code == 200 and response.json()["status"] == "completed"


async def test_totals_exact_under_duplicated_and_out_of_order_reports(http):
    run = await start(http, total_batches=5)
    url = f"/api/v1/runs/{run['id']}/batches"
    for number, ok, failed in [
        (4, 10, 0),
        (2, 10, 1),
        (4, 10, 0),
        (0, 7, 3),
        (2, 20, 0),
        (1, 5, 5),
        (4, 1, 1),
    ]:
        response = await http.post(url, json={"batch": number, "ok": ok, "failed": failed}, headers=AUTH)
        assert response.status_code == 200
    got = (await http.get(f"/api/v1/runs/{run['id']}", headers=AUTH)).json()
    # last figures per batch: 0 -> (7, 3), 1 -> (5, 5), 2 -> (20, 0), 4 -> (1, 1)
    assert (got["ok"], got["failed"], got["batches"]) == (33, 9, 4)


# --------------------------------------------------------------------------------------------------
# auth


async def test_without_guard_api_token_the_api_is_not_configured(sqlite_url):
    from bot.db import upgrade

    await upgrade(sqlite_url)
    deps = await make_deps(make_settings(sqlite_url, guard_api_token=None))
    try:
        async with client_for(deps) as http:
            for method, path in [("POST", "/api/v1/runs"), ("GET", "/api/v1/guard")]:
                response = await http.request(method, path, json={"name": "x"}, headers=AUTH)
                body = assert_error(response, 503, "not_configured")
                assert "GUARD_API_TOKEN" in body["detail"]
        assert await counts(deps) == (0, 0)
    finally:
        await deps.aclose()


BAD_AUTH = [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": "Bearer"},
]


async def test_a_bad_token_is_401_and_nothing_is_stored(http_sqlite, sqlite_deps):
    for headers in BAD_AUTH:
        response = await http_sqlite.post("/api/v1/runs", json={"name": "x"}, headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        assert_error(await http_sqlite.get("/api/v1/guard", headers=headers), 401, "unauthorized")
    assert await counts(sqlite_deps) == (0, 0)


async def test_a_bad_token_cannot_report_into_a_run(http_sqlite, sqlite_deps):
    run = await start(http_sqlite)
    response = await http_sqlite.post(
        f"/api/v1/runs/{run['id']}/batches", json={"batch": 1, "ok": 1, "failed": 0}, headers={}
    )
    assert_error(response, 401, "unauthorized")
    assert await counts(sqlite_deps) == (1, 0)


# --------------------------------------------------------------------------------------------------
# body: media type and size


async def test_a_body_that_is_not_json_is_415(http_sqlite, sqlite_deps):
    run = await start(http_sqlite)
    for path, content in [
        ("/api/v1/runs", "name=x"),
        (f"/api/v1/runs/{run['id']}/batches", "batch=1&ok=1&failed=0"),
        (f"/api/v1/runs/{run['id']}/finish", "status=failed"),
    ]:
        response = await http_sqlite.post(
            path, content=content, headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"}
        )
        assert_error(response, 415, "unsupported_media_type")
    response = await http_sqlite.post(
        "/api/v1/runs", content=b'{"name": "x"}', headers=AUTH
    )  # no Content-Type
    assert_error(response, 415, "unsupported_media_type")
    assert await counts(sqlite_deps) == (1, 0)


async def test_json_with_a_charset_is_json(http_sqlite):
    response = await http_sqlite.post(
        "/api/v1/runs",
        content=b'{"name": "x"}',
        headers={**AUTH, "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201


async def test_a_body_over_1_mib_is_413_on_every_route(http_sqlite, sqlite_deps):
    run = await start(http_sqlite)
    big = json.dumps({"batch": 1, "ok": 1, "failed": 0, "errors": ["x" * 1000] * (MAX_BODY // 1000 + 10)})
    assert len(big) > MAX_BODY

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: the limit counts what arrives
        for start_at in range(0, len(big), 64 * 1024):
            yield big[start_at : start_at + 64 * 1024].encode()

    headers = {**AUTH, "Content-Type": "application/json"}
    for path in ["/api/v1/runs", f"/api/v1/runs/{run['id']}/batches", f"/api/v1/runs/{run['id']}/finish"]:
        declared = await http_sqlite.post(path, content=big, headers=headers)
        assert_error(declared, 413, "body_too_large")
        chunked = await http_sqlite.post(path, content=streamed(), headers=headers)
        assert "content-length" not in chunked.request.headers
        assert_error(chunked, 413, "body_too_large")
    got = (await http_sqlite.get(f"/api/v1/runs/{run['id']}", headers=AUTH)).json()
    assert not got["finished"]
    assert await counts(sqlite_deps) == (1, 0)


# --------------------------------------------------------------------------------------------------
# body: strict schemas


BAD_STARTS = [
    ({"name": "x", "colour": "red"}, "colour"),
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": 7}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "x", "total_records": -1}, "total_records"),
    ({"name": "x", "total_records": "100"}, "total_records"),
    ({"name": "x", "total_records": 1.0}, "total_records"),
    ({"name": "x", "total_records": True}, "total_records"),
    ({"name": "x", "total_batches": 2**31}, "total_batches"),
    ({"name": "x", "source": 5}, "source"),
]


async def test_start_refuses_unknown_fields_and_bad_values(http_sqlite, sqlite_deps):
    for body, field in BAD_STARTS:
        response = await http_sqlite.post("/api/v1/runs", json=body, headers=AUTH)
        error = assert_error(response, 422, "invalid", field)
        assert field in error["detail"], body
    assert await counts(sqlite_deps) == (0, 0)


BAD_BATCHES = [
    ({"batch": 1, "ok": 1, "failed": 0, "extra": 1}, "extra"),
    ({"ok": 1, "failed": 0}, "batch"),
    ({"batch": 1, "failed": 0}, "ok"),
    ({"batch": 1, "ok": 1}, "failed"),
    ({"batch": -1, "ok": 1, "failed": 0}, "batch"),
    ({"batch": 1, "ok": -5, "failed": 0}, "ok"),
    ({"batch": 1, "ok": 1, "failed": "2"}, "failed"),
    ({"batch": 1, "ok": 1.5, "failed": 0}, "ok"),
    ({"batch": 1, "ok": False, "failed": 0}, "ok"),
    ({"batch": 1, "ok": 1, "failed": 0, "errors": "boom"}, "errors"),
    ({"batch": 1, "ok": 1, "failed": 0, "errors": ["ok", 3]}, "errors[1]"),
    ({"batch": 1, "ok": 1, "failed": 0, "record_ids": [""]}, "record_ids[0]"),
    ({"batch": 1, "ok": 1, "failed": 0, "record_ids": [12]}, "record_ids[0]"),
]


async def test_batch_refuses_unknown_fields_and_bad_values(http_sqlite, sqlite_deps):
    run = await start(http_sqlite)
    for body, field in BAD_BATCHES:
        response = await http_sqlite.post(f"/api/v1/runs/{run['id']}/batches", json=body, headers=AUTH)
        assert_error(response, 422, "invalid", field)
    assert await counts(sqlite_deps) == (1, 0)


async def test_finish_refuses_a_bad_status(http_sqlite, sqlite_deps):
    run = await start(http_sqlite)
    for body, field in [({"status": "done"}, "status"), ({"status": "failed", "why": "x"}, "why")]:
        response = await http_sqlite.post(f"/api/v1/runs/{run['id']}/finish", json=body, headers=AUTH)
        assert_error(response, 422, "invalid", field)
    assert not (await http_sqlite.get(f"/api/v1/runs/{run['id']}", headers=AUTH)).json()["finished"]


async def test_every_problem_is_listed(http_sqlite):
    response = await http_sqlite.post("/api/v1/runs", json={"name": "", "size": 1}, headers=AUTH)
    body = assert_error(response, 422, "invalid", "name")
    assert [e["field"] for e in body["errors"]] == ["name", "size"]


async def test_a_body_that_is_not_a_json_object_is_422(http_sqlite, sqlite_deps):
    for content in [b"{not json", b"[1, 2]", b'"text"', b""]:
        response = await http_sqlite.post(
            "/api/v1/runs", content=content, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert response.status_code == 422, content
        assert response.json()["error"] in ("invalid_json", "invalid")
    assert await counts(sqlite_deps) == (0, 0)


# --------------------------------------------------------------------------------------------------
# 404 and 409


async def test_an_unknown_run_is_404(http, sandbox_deps):
    for method, path, body in [
        ("POST", "/api/v1/runs/run_nope/batches", {"batch": 1, "ok": 1, "failed": 0}),
        ("POST", "/api/v1/runs/run_nope/finish", {"status": "completed"}),
        ("GET", "/api/v1/runs/run_nope", None),
    ]:
        response = await http.request(method, path, json=body, headers=AUTH)
        body_ = assert_error(response, 404, "not_found")
        assert "run_nope" in body_["detail"]
    assert await counts(sandbox_deps) == (0, 0)


async def test_a_finished_run_is_409(http, sandbox_deps):
    run = await start(http)
    await http.post(f"/api/v1/runs/{run['id']}/finish", json={"status": "completed"}, headers=AUTH)
    late = await http.post(
        f"/api/v1/runs/{run['id']}/batches", json={"batch": 1, "ok": 1, "failed": 0}, headers=AUTH
    )
    assert_error(late, 409, "conflict")
    again = await http.post(f"/api/v1/runs/{run['id']}/finish", json={"status": "failed"}, headers=AUTH)
    assert_error(again, 409, "conflict")
    got = (await http.get(f"/api/v1/runs/{run['id']}", headers=AUTH)).json()
    assert (got["status"], got["batches"]) == ("completed", 0)
    assert await counts(sandbox_deps) == (1, 0)


# --------------------------------------------------------------------------------------------------
# the guard preflight


async def test_guard_preflight_is_safe_only_while_paused(http, sandbox_deps):
    for state, safe in [
        (GuardStatus.LIVE, False),
        (GuardStatus.PAUSING, False),
        (GuardStatus.PAUSED, True),
        (GuardStatus.RESTORING, False),
    ]:
        await set_guard(sandbox_deps, state)
        response = await http.get("/api/v1/guard", headers=AUTH)
        assert response.status_code == 200
        body = response.json()
        assert body["safe_to_import"] is safe, state
        [target] = body["targets"]
        assert {k: target[k] for k in ("platform", "state", "safe_to_import")} == {
            "platform": "sandbox",
            "state": state.value,
            "safe_to_import": safe,
        }
        assert target["reason"]


async def test_a_batch_answer_says_whether_the_import_is_guarded(http, sandbox_deps):
    run = await start(http)
    url = f"/api/v1/runs/{run['id']}/batches"
    live = (await http.post(url, json={"batch": 1, "ok": 1, "failed": 0}, headers=AUTH)).json()
    assert (live["guard_state"], live["safe_to_import"]) == ("live", False) and live["warning"]
    await set_guard(sandbox_deps, GuardStatus.PAUSED)
    paused = (await http.post(url, json={"batch": 2, "ok": 1, "failed": 0}, headers=AUTH)).json()
    assert (paused["guard_state"], paused["safe_to_import"], paused["warning"]) == ("paused", True, None)
