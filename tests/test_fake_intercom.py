"""The fake Intercom answers like Intercom's OpenAPI description says, and only where it says."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.intercom import (
    SKIP_REASON,
    FakeIntercom,
    ResponseMismatch,
    SkewClock,
    get_spec,
    serve_in_thread,
    specs_available,
)

pytestmark = pytest.mark.skipif(not specs_available(), reason=SKIP_REASON)

TOKEN = "test-token"


def client(
    fake: FakeIntercom, *, version: str | None = "2.16", token: str | None = TOKEN
) -> httpx.AsyncClient:
    headers = {}
    if version is not None:
        headers["Intercom-Version"] = version
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake), base_url="https://api.intercom.io", headers=headers
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeIntercom]:
    fake = FakeIntercom(token=TOKEN)
    fake.add_workflow("67890", "Auto-reply to new conversations", state="live")
    fake.add_workflow("67891", "CSAT survey", state="paused", trigger_type="conversation_closed")
    fake.add_workflow("67892", "Half-built routing", state="draft", description="not finished")
    yield fake
    fake.assert_conformant()
    assert fake.validated == len(fake.calls)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error.list"
    assert re.fullmatch(r"[0-9a-f-]{36}", body["request_id"])
    assert body["errors"][0]["code"] == code
    assert body["errors"][0]["message"]


# ----------------------------------------------------------------------------- routes


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/export/workflows/67890"),
        ("PATCH", "/export/workflows/67890"),
        ("DELETE", "/export/workflows/67890"),
        ("POST", "/export/workflows/67890"),
        ("GET", "/workflows"),
        ("GET", "/workflows/67890"),
        ("POST", "/workflows/67890/pause"),
        ("GET", "/export/workflows"),
        ("GET", "/me/"),
    ],
)
async def test_rejects_routes_the_description_lacks(fake: FakeIntercom, method: str, path: str) -> None:
    async with client(fake) as http:
        response = await http.request(method, path)
    assert_error(response, 404, "not_found")
    assert fake.exports["67890"] == 0


async def test_export_exists_from_2_16_and_in_preview_but_not_in_2_14(fake: FakeIntercom) -> None:
    for version, status in (("2.16", 200), ("Preview", 200), ("2.14", 404)):
        async with client(fake, version=version) as http:
            response = await http.get("/export/workflows/67890")
        assert response.status_code == status, version
    assert fake.exports["67890"] == 2  # the 2.14 call never reached the operation


async def test_route_table_is_computed_from_the_description() -> None:
    spec = get_spec("2.16")
    operations = spec.operations
    assert len(operations) > 200
    for operation in operations:
        concrete = re.sub(r"\{[^}]+\}", "1", operation.template)
        found = spec.match(operation.method, concrete)
        assert found is not None, f"{operation.method} {operation.template}"
        assert found[0].method == operation.method
    # literal segments win over templates, and path parameters come back in order
    assert template("2.16", "POST", "/conversations/search") == "/conversations/search"
    assert template("2.16", "GET", "/conversations/42") == "/conversations/{conversation_id}"
    found = spec.match("GET", "/export/workflows/99")
    assert found is not None
    assert (found[0].operation_id, found[1]) == ("exportWorkflow", ["99"])
    # only POST exists at /conversations/search, so a GET there is a conversation id, as in Intercom
    assert template("2.16", "GET", "/conversations/search") == "/conversations/{conversation_id}"
    assert not spec.has_route("DELETE", "/conversations/search/1")
    assert template("Preview", "GET", "/conversations/42") == "/conversations/{id}"


def template(version: str, method: str, path: str) -> str | None:
    found = get_spec(version).match(method, path)
    return found[0].template if found else None


async def test_unknown_version_is_refused(fake: FakeIntercom) -> None:
    async with client(fake, version="1.4") as http:
        response = await http.get("/me")
    assert_error(response, 400, "intercom_version_invalid")


async def test_default_version_applies_without_header(fake: FakeIntercom) -> None:
    async with client(fake, version=None) as http:
        assert (await http.get("/export/workflows/67890")).status_code == 200
    fake.default_version = "2.14"
    async with client(fake, version=None) as http:
        assert (await http.get("/export/workflows/67890")).status_code == 404
    assert [call.version for call in fake.calls] == [None, None]


# ----------------------------------------------------------------------------- auth


@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_requires_the_bearer_token(fake: FakeIntercom, token: str | None) -> None:
    async with client(fake, token=token) as http:
        response = await http.get("/export/workflows/67890")
    assert_error(response, 401, "unauthorized")
    assert "X-RateLimit-Remaining" in response.headers
    assert fake.exports["67890"] == 0


async def test_basic_auth_is_not_bearer(fake: FakeIntercom) -> None:
    async with client(fake, token=None) as http:
        response = await http.get("/me", auth=(TOKEN, ""))
    assert_error(response, 401, "unauthorized")


# ----------------------------------------------------------------------------- workflows


async def test_export_is_shaped_like_workflow_export(fake: FakeIntercom) -> None:
    async with client(fake) as http:
        response = await http.get("/export/workflows/67892")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"export_version", "exported_at", "app_id", "workflow"}
    assert body["app_id"] == fake.app_id
    workflow = body["workflow"]
    assert workflow["id"] == "67892"
    assert workflow["state"] == "draft"
    assert workflow["description"] == "not finished"
    schema = get_spec("2.16").document["components"]["schemas"]["workflow_export"]
    assert set(workflow) == set(schema["properties"]["workflow"]["properties"])


async def test_state_changes_as_a_person_makes_them(fake: FakeIntercom) -> None:
    clock = SkewClock()
    fake.clock = clock
    async with client(fake) as http:
        before = (await http.get("/export/workflows/67890")).json()["workflow"]
        clock.offset += 60
        fake.set_state("67890", "paused")
        after = (await http.get("/export/workflows/67890")).json()["workflow"]
    assert (before["state"], after["state"]) == ("live", "paused")
    assert after["updated_at"] > before["updated_at"]
    assert {k: v for k, v in after.items() if k not in ("state", "updated_at")} == {
        k: v for k, v in before.items() if k not in ("state", "updated_at")
    }
    with pytest.raises(ValueError, match="state must be one of"):
        fake.set_state("67890", "archived")
    with pytest.raises(ValueError, match="cannot change"):
        fake.update_workflow("67890", id="1")


async def test_plan_restricted_and_deleted_workflows(fake: FakeIntercom) -> None:
    fake.delete_workflow("67891")
    async with client(fake) as http:
        assert_error(await http.get("/export/workflows/67891"), 404, "not_found")
        fake.restrict_plan(True)
        response = await http.get("/export/workflows/67890")
        assert_error(response, 403, "api_plan_restricted")
        assert response.json()["errors"][0]["message"] == "Workflow export is not available for this app"
        fake.restrict_plan(False)
        assert (await http.get("/export/workflows/67890")).status_code == 200
    assert fake.exports == {"67891": 1, "67890": 2}
    assert [(call.method, call.path, call.status) for call in fake.calls] == [
        ("GET", "/export/workflows/67891", 404),
        ("GET", "/export/workflows/67890", 403),
        ("GET", "/export/workflows/67890", 200),
    ]
    assert fake.calls_to("GET", "/export/workflows/67890") == 2


# ----------------------------------------------------------------------------- conversations


async def test_conversation_parts_carry_workflow_events(fake: FakeIntercom) -> None:
    fake.add_part("503", "comment", body="<p>Imported in 2019</p>", created_at=1_560_000_000)
    first = fake.add_workflow_part("503", "Auto-reply to new conversations", created_at=1_700_000_000)
    second = fake.add_workflow_part(
        "503",
        "Tag VIPs",
        part_type="conversation_attribute_updated_by_workflow",
        attribute="tier",
        value="vip",
        created_at=1_700_000_100,
    )
    with pytest.raises(ValueError, match="not a workflow part type"):
        fake.add_workflow_part("503", "x", part_type="comment")
    for version in ("2.16", "2.14", "Preview"):
        async with client(fake, version=version) as http:
            response = await http.get("/conversations/503")
        assert response.status_code == 200, version
        body = response.json()
        assert body["type"] == "conversation"
        parts = body["conversation_parts"]["conversation_parts"]
        assert body["conversation_parts"]["total_count"] == 3
        assert [part["part_type"] for part in parts] == [
            "comment",
            "operator_workflow_event",
            "conversation_attribute_updated_by_workflow",
        ]
        assert parts[1]["id"] == first
        assert parts[1]["event_details"]["workflow"]["name"] == "Auto-reply to new conversations"
        assert parts[1]["event_details"]["event"]["type"] == "workflow_started"
        assert parts[2]["id"] == second
        assert parts[2]["event_details"] == {
            "workflow": {"name": "Tag VIPs"},
            "attribute": {"name": "tier"},
            "value": {"name": "vip"},
        }
    async with client(fake) as http:
        assert_error(await http.get("/conversations/404404"), 404, "not_found")


async def test_only_the_500_most_recent_parts(fake: FakeIntercom) -> None:
    for index in range(505):
        fake.add_part("7", "comment", body=f"<p>{index}</p>", created_at=1_600_000_000 + index)
    async with client(fake) as http:
        parts = (await http.get("/conversations/7")).json()["conversation_parts"]["conversation_parts"]
    assert len(parts) == 500
    assert parts[0]["body"] == "<p>5</p>"


async def test_me_names_the_workspace(fake: FakeIntercom) -> None:
    async with client(fake) as http:
        body = (await http.get("/me")).json()
    assert body["type"] == "admin"
    assert body["app"]["id_code"] == fake.app_id_code


async def test_spec_operations_the_fake_does_not_serve_say_so(fake: FakeIntercom) -> None:
    async with client(fake) as http:
        response = await http.get("/admins")
    assert_error(response, 501, "not_implemented")


# ----------------------------------------------------------------------------- rate limits


async def test_rate_limit_headers_and_429_per_window() -> None:
    clock = SkewClock()
    fake = FakeIntercom(window_budget=3, clock=clock, window_origin=time.time() - 2.5)
    fake.add_workflow("1", "One")
    async with client(fake) as http:
        answers = [await http.get("/export/workflows/1") for _ in range(4)]
        assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
        assert [answer.headers["X-RateLimit-Remaining"] for answer in answers] == ["2", "1", "0", "0"]
        assert {answer.headers["X-RateLimit-Limit"] for answer in answers} == {"3"}
        reset = int(answers[-1].headers["X-RateLimit-Reset"])
        assert 7 <= reset - time.time() <= 8.6  # a Unix timestamp, the end of the 10-second window
        assert_error(answers[-1], 429, "rate_limit_exceeded")
        assert fake.rate_limited == 1
        assert fake.resets_sent == [reset]
        clock.offset += reset - time.time()  # wait for the reset
        again = await http.get("/export/workflows/1")
    assert again.status_code == 200
    assert again.headers["X-RateLimit-Remaining"] == "2"
    assert int(again.headers["X-RateLimit-Reset"]) > reset
    assert fake.exports["1"] == 4  # the 429 never reached the operation
    fake.assert_conformant()


async def test_injected_server_errors(fake: FakeIntercom) -> None:
    fake.inject_errors(503, count=2)
    async with client(fake) as http:
        statuses = [(await http.get("/export/workflows/67890")).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


# ----------------------------------------------------------------------------- validation


async def test_every_answer_is_validated(fake: FakeIntercom) -> None:
    assert fake.validate is True
    fake.add_workflow_part("9", "Auto-reply to new conversations")
    async with client(fake) as http:
        for path in ("/export/workflows/67890", "/export/workflows/1", "/conversations/9", "/me", "/nope"):
            await http.get(path)
        await http.get("/me", headers={"Authorization": "Bearer nope"})
        await http.get("/conversations/9", headers={"Authorization": "Bearer nope"})
    assert fake.validated == len(fake.calls) == 7
    assert fake.mismatches == []
    # answers the description does not declare for an operation are checked as its `error` schema
    assert ("GET", "/conversations/{conversation_id}", 401) not in fake.undeclared  # declared
    assert ("GET", "/export/workflows/{id}", 404) not in fake.undeclared
    assert ("GET", "/me", 401) in fake.undeclared  # /me declares only its 200
    assert ("GET", "/nope", 404) in fake.undeclared


def test_validation_catches_wrong_bodies() -> None:
    fake = FakeIntercom()
    good: dict[str, Any] = {
        "export_version": "1.0",
        "exported_at": "2026-01-26T12:00:00Z",
        "app_id": 12345,
        "workflow": {"id": "1", "title": "T", "state": "live"},
    }
    assert fake.check_response("GET", "/export/workflows/1", 200, good) == []
    wrong_state = {**good, "workflow": {**good["workflow"], "state": "archived"}}
    assert any(
        "archived" in problem
        for problem in fake.check_response("GET", "/export/workflows/1", 200, wrong_state)
    )
    assert fake.check_response("GET", "/export/workflows/1", 200, {**good, "app_id": "12345"})
    assert fake.check_response("GET", "/export/workflows/1", 200, {**good, "exported_at": "yesterday"})
    assert fake.check_response(
        "GET", "/export/workflows/1", 404, {"errors": [{"code": "not_found"}]}
    )  # no type
    assert fake.check_response("GET", "/export/workflows/1", 403, {"type": "error.list", "errors": [{}]})
    assert fake.check_response(
        "GET", "/conversations/1", 200, {"type": "conversation", "created_at": "today"}
    )
    assert fake.check_response("GET", "/export/workflows/1", 201, good)  # a status it never answers


async def test_a_wrong_body_fails_the_test_that_caused_it() -> None:
    fake = FakeIntercom()
    fake.add_workflow("1", "One")
    fake.workflows["1"]["state"] = "archived"  # a back door no person has
    async with client(fake) as http:
        with pytest.raises(ResponseMismatch, match="archived"):
            await http.get("/export/workflows/1")
    assert fake.mismatches and "state" in fake.mismatches[0]
    with pytest.raises(ResponseMismatch):
        fake.assert_conformant()


def test_descriptions_load_once_per_process() -> None:
    started = time.perf_counter()
    assert get_spec("2.16") is get_spec("2.16")
    assert get_spec("2.14") is not get_spec("2.16")
    assert time.perf_counter() - started < 2.0
    with pytest.raises(KeyError):
        get_spec("2.15")


# ----------------------------------------------------------------------------- over a socket


async def test_serves_over_a_real_socket(fake: FakeIntercom) -> None:
    with serve_in_thread(fake) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        headers = {"Authorization": f"Bearer {TOKEN}", "Intercom-Version": "2.16"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as http:
            fake.set_state("67890", "paused")  # from the test's thread while the server runs
            response = await http.get("/export/workflows/67890")
            missing = await http.put("/export/workflows/67890")
    assert response.status_code == 200
    assert response.json()["workflow"]["state"] == "paused"
    assert "X-RateLimit-Reset" in response.headers
    assert_error(missing, 404, "not_found")
