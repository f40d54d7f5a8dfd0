"""The fake Zendesk behaves like the API the adapter is written against: pagination, strict PUTs,
auth, rate limits and injected faults."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.zendesk import FakeClock, FakeZendesk, seed_random, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
BASIC = "Basic " + base64.b64encode(b"agent@example.com/token:test-api-token").decode()
RULE = {
    "title": "Auto-reply",
    "active": True,
    "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}], "any": []},
    "actions": [{"field": "status", "value": "open"}],
}
SLA = {
    "title": "Urgent",
    "filter": {"all": [{"field": "type", "operator": "is", "value": "incident"}], "any": []},
    "policy_metrics": [
        {"priority": "urgent", "metric": "first_reply_time", "target": 30, "business_hours": False}
    ],
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeZendesk:
    return FakeZendesk(clock=clock.now)


@pytest.fixture
async def client(fake: FakeZendesk) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=fake)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://acme.zendesk.com", headers={"Authorization": BASIC}
    ) as client:
        yield client


async def test_auth_basic_token_and_bearer_accepted_others_refused(
    fake: FakeZendesk, client: httpx.AsyncClient
):
    assert (await client.get("/api/v2/triggers.json")).status_code == 200
    bearer = {"Authorization": "Bearer test-oauth-token"}
    assert (await client.get("/api/v2/triggers.json", headers=bearer)).status_code == 200
    wrong = "Basic " + base64.b64encode(b"agent@example.com/token:nope").decode()
    for headers in ({"Authorization": wrong}, {"Authorization": "Bearer nope"}, {"Authorization": ""}):
        response = await client.get("/api/v2/triggers.json", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "Couldn't authenticate you"}
    no_token = FakeZendesk(oauth_token=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=no_token), base_url="http://x") as bare:
        assert (await bare.get("/api/v2/triggers.json", headers=bearer)).status_code == 401


async def test_cursor_pagination_walks_every_object_once(fake: FakeZendesk, client: httpx.AsyncClient):
    for index in range(260):
        fake.seed("trigger", title=f"t{index}", **{k: v for k, v in RULE.items() if k != "title"})
    seen: list[int] = []
    url: str | None = "/api/v2/triggers.json?page[size]=100"
    pages = 0
    while url:
        body = (await client.get(url)).json()
        pages += 1
        seen.extend(t["id"] for t in body["triggers"])
        assert body["meta"]["has_more"] is (body["links"]["next"] is not None)
        url = body["links"]["next"]
        if url:
            assert url.startswith("https://acme.zendesk.com/api/v2/triggers.json?")
            assert body["meta"]["after_cursor"] in httpx.URL(url).params["page[after]"]
    assert pages == 3
    assert len(seen) == len(set(seen)) == 260
    assert seen == [t["id"] for t in fake.all("trigger")]


async def test_page_size_default_max_and_bad_cursor(fake: FakeZendesk, client: httpx.AsyncClient):
    for _ in range(120):
        fake.seed("automation", **RULE)
    body = (await client.get("/api/v2/automations")).json()
    assert len(body["automations"]) == 100 and body["meta"]["has_more"] is True
    assert (await client.get("/api/v2/automations.json?page[size]=101")).status_code == 400
    bad = await client.get("/api/v2/automations.json?page[after]=garbage")
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidPaginationParameter"
    prev = (await client.get(body["links"]["next"])).json()["links"]["prev"]
    back = (await client.get(prev)).json()
    assert [a["id"] for a in back["automations"]] == [a["id"] for a in body["automations"]]


async def test_objects_have_zendesk_fields(fake: FakeZendesk, client: httpx.AsyncClient):
    fake.seed_random(40, seed=3)
    trigger = (await client.get("/api/v2/triggers.json")).json()["triggers"][0]
    for key in ("id", "title", "raw_title", "active", "position", "default", "description", "category_id"):
        assert key in trigger
    assert trigger["created_at"].endswith("Z") and trigger["url"].endswith(f"/triggers/{trigger['id']}.json")
    sla = (await client.get("/api/v2/slas/policies.json")).json()["sla_policies"][0]
    assert "active" not in sla
    assert {"filter", "policy_metrics", "position", "description"} <= set(sla)
    one = (await client.get(f"/api/v2/slas/policies/{sla['id']}")).json()
    assert one == {"sla_policy": sla}


async def test_unknown_id_is_404_record_not_found(client: httpx.AsyncClient):
    for path in ("/api/v2/triggers/1.json", "/api/v2/automations/999", "/api/v2/slas/policies/5.json"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": "RecordNotFound", "description": "Not found"}
    assert (await client.put("/api/v2/triggers/1.json", json={"trigger": RULE})).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"conditions": RULE["conditions"]},
        {"actions": RULE["actions"]},
        {"description": "only a description"},
        {"active": "false"},
        {"active": True, "conditions": {"all": {"field": "x"}}, "actions": RULE["actions"]},
        {
            "conditions": {"all": [{"field": "status", "operator": "kinda", "value": "x"}]},
            "actions": RULE["actions"],
        },
        {"conditions": RULE["conditions"], "actions": []},
    ],
)
async def test_put_rule_refused_without_full_conditions_and_actions(
    fake: FakeZendesk, client: httpx.AsyncClient, body: dict
):
    trigger = fake.seed("trigger", **RULE)
    response = await client.put(f"/api/v2/triggers/{trigger['id']}.json", json={"trigger": body})
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "RecordInvalid" and error["details"]
    assert fake.get("trigger", trigger["id"]) == trigger
    assert fake.write_count("trigger", trigger["id"]) == 0


async def test_put_quick_fields_alone_are_accepted(fake: FakeZendesk, client: httpx.AsyncClient):
    automation = fake.seed("automation", **RULE)
    response = await client.put(
        f"/api/v2/automations/{automation['id']}", json={"automation": {"active": False}}
    )
    assert response.status_code == 200
    assert response.json()["automation"]["active"] is False
    assert fake.get("automation", automation["id"])["conditions"] == RULE["conditions"]


@pytest.mark.parametrize(
    "body",
    [
        {**SLA, "active": False},
        {"title": "x", "filter": SLA["filter"]},
        {"title": "x", "policy_metrics": SLA["policy_metrics"]},
        {
            **SLA,
            "policy_metrics": [
                {"priority": "urgent", "metric": "vibes", "target": 1, "business_hours": False}
            ],
        },
    ],
)
async def test_put_sla_policy_refused(fake: FakeZendesk, client: httpx.AsyncClient, body: dict):
    policy = fake.seed("sla_policy", **SLA)
    response = await client.put(f"/api/v2/slas/policies/{policy['id']}.json", json={"sla_policy": body})
    assert response.status_code == 422
    assert response.json()["error"] == "RecordInvalid"


async def test_put_replaces_bumps_updated_at_and_counts(fake: FakeZendesk, client: httpx.AsyncClient):
    trigger = fake.seed("trigger", **RULE)
    stamps = [trigger["updated_at"]]
    for index in range(3):
        body = {**RULE, "title": f"v{index}", "id": 1, "url": "ignored"}
        response = await client.put(f"/api/v2/triggers/{trigger['id']}.json", json={"trigger": body})
        assert response.status_code == 200
        stamps.append(response.json()["trigger"]["updated_at"])
    assert stamps == sorted(stamps) and len(set(stamps)) == 4
    stored = fake.get("trigger", trigger["id"])
    assert stored["title"] == stored["raw_title"] == "v2" and stored["id"] == trigger["id"]
    assert fake.write_count("trigger", trigger["id"]) == 3


async def test_create_and_delete(fake: FakeZendesk, client: httpx.AsyncClient):
    created = await client.post("/api/v2/slas/policies.json", json={"sla_policy": SLA})
    assert created.status_code == 201
    policy_id = created.json()["sla_policy"]["id"]
    assert fake.get("sla_policy", policy_id)["filter"] == SLA["filter"]
    renamed = await client.put(
        f"/api/v2/slas/policies/{policy_id}.json", json={"sla_policy": {**SLA, "title": "R"}}
    )
    assert renamed.status_code == 200 and renamed.json()["sla_policy"]["title"] == "R"
    assert set(fake.get("sla_policy", policy_id)) == set(created.json()["sla_policy"]) - {"url"}
    refused = await client.post("/api/v2/triggers.json", json={"trigger": {"title": "no rules"}})
    assert refused.status_code == 422
    assert (await client.delete(f"/api/v2/slas/policies/{policy_id}.json")).status_code == 204
    assert (await client.get(f"/api/v2/slas/policies/{policy_id}.json")).status_code == 404


async def test_person_edit_and_delete_through_state(fake: FakeZendesk, client: httpx.AsyncClient):
    trigger = fake.seed("trigger", **RULE)
    added = {"field": "priority", "operator": "is", "value": "urgent"}
    fake.edit_as_person("trigger", trigger["id"], lambda t: t["conditions"]["all"].append(added))
    read = (await client.get(f"/api/v2/triggers/{trigger['id']}.json")).json()["trigger"]
    assert added in read["conditions"]["all"] and read["updated_at"] > trigger["updated_at"]
    assert fake.write_count("trigger", trigger["id"]) == 0
    fake.delete("trigger", trigger["id"])
    assert (await client.get(f"/api/v2/triggers/{trigger['id']}.json")).status_code == 404


async def test_sliding_window_rate_limit(fake: FakeZendesk, client: httpx.AsyncClient, clock: FakeClock):
    fake.rate_limit = 3
    for expected_remaining in (2, 1, 0):
        response = await client.get("/api/v2/triggers.json")
        assert response.status_code == 200
        assert response.headers["X-Rate-Limit"] == "3"
        assert response.headers["X-Rate-Limit-Remaining"] == str(expected_remaining)
        clock.now_value += 10
    refused = await client.get("/api/v2/triggers.json")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"  # the first request (t=0) leaves the window at t=60
    assert refused.headers["X-Rate-Limit-Remaining"] == "0"
    clock.now_value = 59.5
    assert (await client.get("/api/v2/triggers.json")).status_code == 429
    assert (await client.get("/api/v2/triggers.json")).headers["Retry-After"] == "1"
    clock.now_value = 60.0
    assert (await client.get("/api/v2/triggers.json")).status_code == 200
    assert (await client.get("/api/v2/triggers.json")).status_code == 429  # t=10 is still inside
    assert fake.throttled_count == 4


async def test_fail_next_then_recovers(fake: FakeZendesk, client: httpx.AsyncClient):
    fake.fail_next(2, status=503, methods={"PUT"})
    assert (await client.get("/api/v2/triggers.json")).status_code == 200
    trigger = fake.seed("trigger", **RULE)
    statuses = [
        (await client.put(f"/api/v2/triggers/{trigger['id']}.json", json={"trigger": RULE})).status_code
        for _ in range(3)
    ]
    assert statuses == [503, 503, 200]
    assert fake.write_count("trigger", trigger["id"]) == 1
    assert fake.errors_sent == 2


async def test_random_faults_are_reproducible():
    async def statuses(seed: int) -> list[int]:
        fake = FakeZendesk(error_rate=0.3, throttle_rate=0.2, seed=seed)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=fake), base_url="http://x", headers={"Authorization": BASIC}
        ) as client:
            return [(await client.get("/api/v2/automations.json")).status_code for _ in range(40)]

    first, again, other = await statuses(7), await statuses(7), await statuses(8)
    assert first == again and first != other
    assert {200, 429} <= set(first) and set(first) & {500, 503}


async def test_latency_is_added(fake: FakeZendesk, client: httpx.AsyncClient):
    fake.latency, fake.slow = 0.05, 0.1
    started = time.perf_counter()
    await client.get("/api/v2/triggers.json")
    assert time.perf_counter() - started >= 0.15


async def test_observability_counts_calls(fake: FakeZendesk, client: httpx.AsyncClient):
    await client.get("/api/v2/triggers.json")
    await client.get("/api/v2/triggers/3", headers={"Authorization": "Bearer wrong"})
    assert fake.request_count == 2
    assert fake.calls == [("GET", "/api/v2/triggers.json"), ("GET", "/api/v2/triggers/3")]


def test_seed_random_is_a_realistic_deterministic_mix():
    one, two = FakeZendesk(), FakeZendesk()
    seed_random(one, 300, seed=5)
    two.seed_random(300, seed=5)
    for kind in ("trigger", "automation", "sla_policy"):
        strip = [{k: v for k, v in o.items() if k not in ("id",)} for o in one.all(kind)]
        assert strip == [{k: v for k, v in o.items() if k not in ("id",)} for o in two.all(kind)]
    triggers, automations, slas = one.all("trigger"), one.all("automation"), one.all("sla_policy")
    assert len(triggers) > len(automations) > len(slas) > 10
    assert {t["active"] for t in triggers} == {True, False}
    assert {a["active"] for a in automations} == {True, False}
    assert len({str(t["conditions"]) for t in triggers}) > 50
    assert any(t["conditions"]["any"] for t in triggers)
    assert all(s["policy_metrics"] and s["filter"]["all"] for s in slas)


def test_serve_in_thread_over_a_real_socket():
    fake = FakeZendesk()
    fake.seed("trigger", **RULE)
    with serve_in_thread(fake) as url:
        assert url.startswith("http://127.0.0.1:")
        response = httpx.get(f"{url}/api/v2/triggers.json", headers={"Authorization": BASIC})
        assert response.status_code == 200
        assert response.json()["triggers"][0]["url"].startswith(url)
        state = httpx.get(f"{url}/_fake/state").json()
        assert state["request_count"] == 1 and len(state["objects"]["trigger"]) == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/v2/triggers.json", headers={"Authorization": BASIC}, timeout=1)


def test_cli_serves_seeded_fake_in_another_process():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.zendesk", "--port", "0", "--seed-random", "30", "--seed", "2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        state = httpx.get(f"{url}/_fake/state", timeout=5).json()
        assert sum(len(objects) for objects in state["objects"].values()) == 30
    finally:
        process.terminate()
        process.wait(timeout=5)
