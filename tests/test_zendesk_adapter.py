"""ZendeskPlatform against the fake Zendesk: reads, pure edits, full-replace writes, and the
rate-limit and retry behaviour it gets from HttpTarget."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from adapters.base import (
    Action,
    Automation,
    AutomationGone,
    EditNotPossible,
    Platform,
    PlatformError,
    exemption_condition,
)
from adapters.http import HttpTarget, build_client
from adapters.zendesk import ZendeskPlatform, zendesk_auth, zendesk_base_url
from tests.fakes.zendesk import FakeClock, FakeZendesk, serve_in_thread

TAG = "migration_import"
RULE = {
    "title": "Auto-reply",
    "active": True,
    "description": "Tell the requester we got it",
    "conditions": {
        "all": [{"field": "update_type", "operator": "is", "value": "Create"}],
        "any": [{"field": "via_id", "operator": "is", "value": 4}],
    },
    "actions": [{"field": "notification_user", "value": ["requester_id", "Got it", "We got your request."]}],
}
SLA = {
    "title": "Urgent incidents",
    "description": "",
    "filter": {"all": [{"field": "type", "operator": "is", "value": "incident"}], "any": []},
    "policy_metrics": [
        {"priority": "urgent", "metric": "first_reply_time", "target": 30, "business_hours": False}
    ],
}
PERSON_CONDITION = {"field": "priority", "operator": "is", "value": "urgent"}

Factory = Callable[..., ZendeskPlatform]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeZendesk:
    return FakeZendesk(clock=clock.now)


@pytest.fixture
async def make(fake: FakeZendesk, clock: FakeClock) -> AsyncIterator[Factory]:
    """Builds platforms on the in-process fake, the way the application will (build_client +
    zendesk_auth); the HttpTarget sleeps on the fake's clock so waits take no real time."""
    made: list[ZendeskPlatform] = []

    def factory(auth: httpx.Auth | tuple[str, str] | None = None, base_url: str = "https://acme.zendesk.com"):
        client = build_client(
            base_url,
            auth=auth or zendesk_auth("agent@example.com", "test-api-token", None),
            transport=httpx.ASGITransport(app=fake) if base_url.startswith("https://acme") else None,
        )
        http = HttpTarget(client, rate_per_second=1000, reset_headers=("ratelimit-reset",), sleep=clock.sleep)
        platform = ZendeskPlatform(http, web_url="https://acme.zendesk.com")
        made.append(platform)
        return platform

    yield factory
    for platform in made:
        await platform.aclose()


@pytest.fixture
def zendesk(make: Factory) -> ZendeskPlatform:
    return make()


def seed_rule(fake: FakeZendesk, kind: str = "trigger", **fields) -> str:
    return str(fake.seed(kind, **{**RULE, **fields})["id"])


async def test_is_a_platform_with_zendesk_kinds(zendesk: ZendeskPlatform):
    assert isinstance(zendesk, Platform)
    assert (zendesk.name, zendesk.display_name) == ("zendesk", "Zendesk")
    assert {k: {c.value for c in info.capabilities} for k, info in zendesk.kinds.items()} == {
        "trigger": {"toggle", "exempt"},
        "automation": {"toggle", "exempt"},
        "sla_policy": {"exempt"},
    }


async def test_list_reads_every_page_of_every_kind(fake: FakeZendesk, zendesk: ZendeskPlatform):
    for index in range(260):
        seed_rule(fake, title=f"trigger {index}", active=index % 4 != 0)
    for _ in range(3):
        seed_rule(fake, "automation")
    fake.seed("sla_policy", **SLA)
    found = await zendesk.list_automations()
    by_kind = {kind: [a for a in found if a.kind == kind] for kind in ("trigger", "automation", "sla_policy")}
    assert len(by_kind["trigger"]) == 260 and len({a.id for a in by_kind["trigger"]}) == 260
    assert [a.id for a in by_kind["trigger"]] == [str(t["id"]) for t in fake.all("trigger")]
    assert len(by_kind["automation"]) == 3 and len(by_kind["sla_policy"]) == 1
    assert sum(1 for a in by_kind["trigger"] if a.enabled is False) == 65
    assert by_kind["sla_policy"][0].enabled is None
    trigger_pages = [path for method, path in fake.calls if path.startswith("/api/v2/triggers")]
    assert len(trigger_pages) == 3


async def test_definition_is_stable_and_links_go_to_admin_center(fake: FakeZendesk, zendesk: ZendeskPlatform):
    trigger_id = seed_rule(fake)
    first = await zendesk.get_automation("trigger", trigger_id)
    again = await zendesk.get_automation("trigger", trigger_id)
    assert first == again and first.definition == again.definition
    assert not {"created_at", "updated_at", "url"} & set(first.definition)
    assert (
        first.definition["conditions"] == RULE["conditions"]
        and first.definition["actions"] == RULE["actions"]
    )
    assert first.name == "Auto-reply" and first.enabled is True
    assert first.updated_at == fake.get("trigger", trigger_id)["updated_at"]
    assert first.url == f"https://acme.zendesk.com/admin/objects-rules/rules/triggers/{trigger_id}"
    fake.edit_as_person("trigger", trigger_id, title="Renamed")
    assert await zendesk.get_automation("trigger", trigger_id) != first


async def test_deleted_automation_is_gone(fake: FakeZendesk, zendesk: ZendeskPlatform):
    trigger_id = seed_rule(fake)
    before = await zendesk.get_automation("trigger", trigger_id)
    fake.delete("trigger", trigger_id)
    with pytest.raises(AutomationGone):
        await zendesk.get_automation("trigger", trigger_id)
    with pytest.raises(AutomationGone):
        await zendesk.write(zendesk.edit(before, Action.DISABLE, TAG))


async def test_edit_is_pure_and_toggles(fake: FakeZendesk, zendesk: ZendeskPlatform):
    original = await zendesk.get_automation("automation", seed_rule(fake, "automation"))
    snapshot = (original.enabled, original.definition["active"], original.definition["conditions"])
    disabled = zendesk.edit(original, Action.DISABLE, TAG)
    assert (disabled.enabled, disabled.definition["active"]) == (False, False)
    assert (original.enabled, original.definition["active"], original.definition["conditions"]) == snapshot
    assert zendesk.edit(disabled, Action.ENABLE, TAG) == original
    with pytest.raises(EditNotPossible):
        zendesk.edit(original, Action.MANUAL, TAG)
    with pytest.raises(EditNotPossible):
        zendesk.edit(original, Action.EXEMPT, "two words")


async def test_sla_policy_cannot_be_toggled(fake: FakeZendesk, zendesk: ZendeskPlatform):
    policy = await zendesk.get_automation("sla_policy", str(fake.seed("sla_policy", **SLA)["id"]))
    for action in (Action.DISABLE, Action.ENABLE):
        with pytest.raises(EditNotPossible):
            zendesk.edit(policy, action, TAG)


async def test_disable_writes_full_object_and_enable_restores(fake: FakeZendesk, zendesk: ZendeskPlatform):
    trigger_id = seed_rule(fake, category_id="777")
    original = await zendesk.get_automation("trigger", trigger_id)
    written = await zendesk.write(zendesk.edit(original, Action.DISABLE, TAG))
    stored = fake.get("trigger", trigger_id)
    assert stored["active"] is False and written.enabled is False
    assert stored["conditions"] == RULE["conditions"] and stored["actions"] == RULE["actions"]
    assert stored["category_id"] == "777" and stored["description"] == RULE["description"]
    assert written.updated_at == stored["updated_at"] != original.updated_at
    restored = await zendesk.write(zendesk.edit(written, Action.ENABLE, TAG))
    assert restored == original
    assert fake.write_count("trigger", trigger_id) == 2


async def test_dynamic_content_title_survives_a_write(fake: FakeZendesk, zendesk: ZendeskPlatform):
    fake.dynamic_content["welcome"] = "Welcome reply"
    trigger_id = seed_rule(fake, title="{{dc.welcome}}")
    original = await zendesk.get_automation("trigger", trigger_id)
    assert original.name == "Welcome reply"
    await zendesk.write(zendesk.edit(original, Action.DISABLE, TAG))
    assert fake.get("trigger", trigger_id)["raw_title"] == "{{dc.welcome}}"
    assert await zendesk.write(zendesk.edit(original, Action.ENABLE, TAG)) == original


async def test_exempt_round_trip_keeps_a_persons_condition(fake: FakeZendesk, zendesk: ZendeskPlatform):
    trigger_id = seed_rule(fake)
    original = await zendesk.get_automation("trigger", trigger_id)
    exempted = await zendesk.write(zendesk.edit(original, Action.EXEMPT, TAG))
    assert fake.get("trigger", trigger_id)["conditions"]["all"][-1] == exemption_condition(TAG)
    assert exempted.enabled is True
    fake.edit_as_person("trigger", trigger_id, lambda t: t["conditions"]["all"].append(PERSON_CONDITION))
    live = await zendesk.get_automation("trigger", trigger_id)
    restored = await zendesk.write(zendesk.edit(live, Action.UNEXEMPT, TAG))
    assert restored.definition["conditions"]["all"] == [*RULE["conditions"]["all"], PERSON_CONDITION]
    assert restored.definition["conditions"]["any"] == RULE["conditions"]["any"]
    assert restored.definition["actions"] == RULE["actions"]


async def test_exempt_then_unexempt_is_exact(fake: FakeZendesk, zendesk: ZendeskPlatform):
    trigger_id = seed_rule(fake)
    original = await zendesk.get_automation("trigger", trigger_id)
    exempted = await zendesk.write(zendesk.edit(original, Action.EXEMPT, TAG))
    assert zendesk.edit(exempted, Action.EXEMPT, TAG) == exempted  # idempotent: never added twice
    restored = await zendesk.write(zendesk.edit(exempted, Action.UNEXEMPT, TAG))
    assert restored == original
    assert restored.definition == original.definition


async def test_sla_policy_exempt_edits_filter(fake: FakeZendesk, zendesk: ZendeskPlatform):
    policy_id = str(fake.seed("sla_policy", **SLA)["id"])
    original = await zendesk.get_automation("sla_policy", policy_id)
    exempted = await zendesk.write(zendesk.edit(original, Action.EXEMPT, TAG))
    stored = fake.get("sla_policy", policy_id)
    assert stored["filter"]["all"] == [*SLA["filter"]["all"], exemption_condition(TAG)]
    assert stored["policy_metrics"] == SLA["policy_metrics"] and "active" not in stored
    assert exempted.enabled is None
    assert await zendesk.write(zendesk.edit(exempted, Action.UNEXEMPT, TAG)) == original


async def test_rate_limit_waits_for_retry_after(
    fake: FakeZendesk, zendesk: ZendeskPlatform, clock: FakeClock
):
    ids = [seed_rule(fake, title=f"r{i}") for i in range(5)]
    fake.rate_limit = 2
    read = [await zendesk.get_automation("trigger", automation_id) for automation_id in ids]
    assert [a.id for a in read] == ids
    assert fake.throttled_count >= 2 and zendesk.http.stats.rate_limited == fake.throttled_count
    assert clock.slept and all(wait >= 1 for wait in clock.slept)
    assert sum(clock.slept) >= 60  # five reads at two per minute need two full windows


async def test_rate_limit_with_a_real_short_wait():
    """Real time: a one-second window, so the Retry-After of 1 s is honoured by a real sleep."""
    live = FakeZendesk(rate_limit=1, rate_window=1.0)
    trigger_id = str(live.seed("trigger", **RULE)["id"])
    client = build_client(
        "https://acme.zendesk.com",
        auth=zendesk_auth("agent@example.com", "test-api-token", None),
        transport=httpx.ASGITransport(app=live),
    )
    platform = ZendeskPlatform(HttpTarget(client, rate_per_second=1000, reset_headers=("ratelimit-reset",)))
    try:
        started = time.monotonic()
        await platform.get_automation("trigger", trigger_id)
        await platform.get_automation("trigger", trigger_id)
        assert time.monotonic() - started >= 0.9
        assert live.throttled_count == 1
    finally:
        await platform.aclose()


async def test_injected_5xx_on_put_is_retried(fake: FakeZendesk, zendesk: ZendeskPlatform):
    trigger_id = seed_rule(fake)
    original = await zendesk.get_automation("trigger", trigger_id)
    fake.fail_next(3, status=503, methods={"PUT"})
    written = await zendesk.write(zendesk.edit(original, Action.DISABLE, TAG))
    assert written.enabled is False and fake.get("trigger", trigger_id)["active"] is False
    assert fake.write_count("trigger", trigger_id) == 1
    assert [m for m, _ in fake.calls].count("PUT") == 4


async def test_persistent_5xx_becomes_platform_error(fake: FakeZendesk, zendesk: ZendeskPlatform):
    trigger_id = seed_rule(fake)
    original = await zendesk.get_automation("trigger", trigger_id)
    fake.fail_next(100, status=500)
    with pytest.raises(PlatformError) as raised:
        await zendesk.write(zendesk.edit(original, Action.DISABLE, TAG))
    assert raised.value.status == 500 and not isinstance(raised.value, AutomationGone)
    assert fake.get("trigger", trigger_id)["active"] is True


async def test_refused_write_reports_zendesk_reason(fake: FakeZendesk, zendesk: ZendeskPlatform):
    trigger_id = seed_rule(fake)
    original = await zendesk.get_automation("trigger", trigger_id)
    broken = Automation(
        kind="trigger",
        id=trigger_id,
        name="x",
        enabled=True,
        definition={**original.definition, "actions": []},
    )
    with pytest.raises(PlatformError) as raised:
        await zendesk.write(broken)
    assert raised.value.status == 422 and raised.value.code == "RecordInvalid"
    assert "Actions: cannot be blank" in str(raised.value)
    assert fake.write_count("trigger", trigger_id) == 0


@pytest.mark.parametrize(
    "auth",
    [
        ("agent@example.com/token", "wrong-token"),
        zendesk_auth(None, None, "wrong-oauth-token"),
    ],
)
async def test_bad_credentials_are_a_platform_error_without_secrets(make: Factory, auth):
    platform = make(auth=auth)
    with pytest.raises(PlatformError) as raised:
        await platform.list_automations()
    assert raised.value.status == 401
    assert "authenticate" in str(raised.value)
    assert "wrong" not in str(raised.value)


async def test_oauth_bearer_is_accepted(fake: FakeZendesk, make: Factory):
    seed_rule(fake)
    platform = make(auth=zendesk_auth("ignored@example.com", None, "test-oauth-token"))
    assert len(await platform.list_automations()) == 1


async def test_over_a_real_socket(fake: FakeZendesk):
    fake.seed_random(150, seed=11)
    with serve_in_thread(fake) as url:
        client = build_client(
            zendesk_base_url(None, url), auth=zendesk_auth("agent@example.com", "test-api-token", None)
        )
        platform = ZendeskPlatform(
            HttpTarget(client, rate_per_second=1000, reset_headers=("ratelimit-reset",))
        )
        try:
            found = await platform.list_automations()
            assert len(found) == 150
            target = next(a for a in found if a.enabled)
            written = await platform.write(platform.edit(target, Action.DISABLE, TAG))
            assert written.enabled is False
            assert fake.get(target.kind, target.id)["active"] is False
            assert target.url and target.url.startswith(url)
        finally:
            await platform.aclose()


def test_base_url_helper():
    assert zendesk_base_url("acme", None) == "https://acme.zendesk.com"
    assert zendesk_base_url("ACME.zendesk.com", None) == "https://acme.zendesk.com"
    assert zendesk_base_url("acme", "http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    for subdomain, url in ((None, None), ("", " "), ("acme corp", None), (None, "acme.zendesk.com")):
        with pytest.raises(ValueError, match="ZENDESK_"):
            zendesk_base_url(subdomain, url)


def test_auth_helper():
    class Secret:
        def __init__(self, value: str):
            self.value = value

        def get_secret_value(self) -> str:
            return self.value

    user, password = zendesk_auth("agent@example.com", Secret("tok"), None)
    assert (user, password) == ("agent@example.com/token", "tok")
    request = next(httpx.BasicAuth(user, password).auth_flow(httpx.Request("GET", "https://x")))
    assert (
        request.headers["Authorization"]
        == "Basic " + base64.b64encode(b"agent@example.com/token:tok").decode()
    )
    bearer = zendesk_auth("agent@example.com", "tok", Secret("oauth"))
    request = next(bearer.auth_flow(httpx.Request("GET", "https://x")))
    assert request.headers["Authorization"] == "Bearer oauth"
    assert "oauth" not in repr(bearer)
    for email, token, oauth in ((None, None, None), ("agent@example.com", None, None), (None, "tok", None)):
        with pytest.raises(ValueError, match="ZENDESK_"):
            zendesk_auth(email, token, oauth)
