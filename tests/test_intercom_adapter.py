"""The Intercom adapter against the fake Intercom (which answers as Intercom's OpenAPI description says)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from adapters.base import (
    Action,
    Automation,
    AutomationGone,
    Capability,
    EditNotPossible,
    Platform,
    PlatformError,
)
from adapters.http import HttpTarget
from adapters.intercom import (
    IntercomPlatform,
    WorkflowEvent,
    app_host,
    conversation_url,
    intercom_headers,
    intercom_target,
    parse_workflow_ref,
    workflow_url,
)
from tests.fakes.intercom import SKIP_REASON, FakeIntercom, SkewClock, serve_in_thread, specs_available

needs_specs = pytest.mark.skipif(not specs_available(), reason=SKIP_REASON)
TOKEN = "test-token"
TAG = "migration_import"


def inventory_of(*ids: str) -> Callable[[], Awaitable[list[str]]]:
    async def inventory() -> list[str]:
        return list(ids)

    return inventory


def platform_for(
    fake: FakeIntercom,
    *ids: str,
    app_id: str | None = "abc123de",
    clock: SkewClock | None = None,
    concurrency: int = 8,
) -> IntercomPlatform:
    target = intercom_target(
        "https://api.intercom.io",
        TOKEN,
        transport=httpx.ASGITransport(app=fake),
        sleep=(clock or SkewClock()).sleep,
        concurrency=concurrency,
    )
    return IntercomPlatform(target, inventory=inventory_of(*ids), app_id=app_id)


@pytest.fixture
async def fake() -> AsyncIterator[FakeIntercom]:
    fake = FakeIntercom(token=TOKEN)
    fake.add_workflow("101", "Auto-reply to new conversations", state="live", targeting={"channel": "email"})
    fake.add_workflow("102", "CSAT survey", state="paused", trigger_type="conversation_closed")
    fake.add_workflow("103", "Half-built routing", state="draft")
    yield fake
    fake.assert_conformant()


def workflow(state: str | None, **definition: object) -> Automation:
    return Automation(
        kind="workflow",
        id="101",
        name="Auto-reply",
        enabled={"live": True, "paused": False, "draft": False}.get(state or ""),
        definition={"state": state, "title": "Auto-reply", **definition},
        url=workflow_url("abc", "101"),
    )


# ----------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12345", "12345"),
        ("  12345\n", "12345"),
        ("https://app.intercom.com/a/apps/abc123de/automation/workflows/12345", "12345"),
        ("https://app.intercom.com/a/apps/abc123de/automation/workflows/12345/edit?tab=rules#x", "12345"),
        ("https://app.eu.intercom.com/a/apps/xyz/automation/workflows/987", "987"),
        ("app.intercom.com/a/apps/_/automation/workflows/42", "42"),
        ("<https://app.intercom.com/a/apps/abc/automation/workflows/77>", "77"),
        ("<https://app.intercom.com/a/apps/abc/automation/workflows/78|Auto-reply>", "78"),
    ],
)
def test_parse_workflow_ref(text: str, expected: str) -> None:
    assert parse_workflow_ref(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "auto-reply",
        "12a45",
        "-5",
        "https://app.intercom.com/a/apps/abc/automation/workflows-overview",
        "https://app.intercom.com/a/apps/abc/inbox/conversation/12345",
        "https://evil.example.com/a/apps/abc/automation/workflows/12345",
        "https://app.intercom.com.evil.example/automation/workflows/12345",
        "ftp://app.intercom.com/a/apps/abc/automation/workflows/12345",
        "x" * 500,
    ],
)
def test_parse_workflow_ref_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not an Intercom workflow") as caught:
        parse_workflow_ref(text)
    assert len(str(caught.value)) < 300


def test_links_and_headers() -> None:
    assert (
        workflow_url("abc123de", "101") == "https://app.intercom.com/a/apps/abc123de/automation/workflows/101"
    )
    assert workflow_url(None, "101") == "https://app.intercom.com/a/apps/_/automation/workflows/101"
    assert parse_workflow_ref(workflow_url("abc", "55", host="app.eu.intercom.com")) == "55"
    assert conversation_url("abc", "9") == "https://app.intercom.com/a/inbox/abc/inbox/conversation/9"
    assert app_host("https://api.eu.intercom.io") == "app.eu.intercom.com"
    assert app_host("https://api.au.intercom.io/") == "app.au.intercom.com"
    assert app_host("http://127.0.0.1:8080") == "app.intercom.com"
    assert intercom_headers("t0k", "2.16") == {
        "Authorization": "Bearer t0k",
        "Intercom-Version": "2.16",
        "Accept": "application/json",
    }


def test_edit_pauses_a_live_workflow_and_restores_a_paused_one() -> None:
    platform = IntercomPlatform(intercom_target("https://api.intercom.io", TOKEN), inventory=inventory_of())
    live = workflow("live", targeting={"a": 1})
    paused = platform.edit(live, Action.MANUAL, TAG)
    assert paused.definition == {**live.definition, "state": "paused"}
    assert paused.enabled is False
    assert (paused.id, paused.name, paused.url) == (live.id, live.name, live.url)
    assert live.definition["state"] == "live"  # pure
    assert platform.edit(paused, Action.MANUAL, TAG) == live  # INVERSE[MANUAL] is MANUAL: set live again


def test_edit_refuses_what_intercom_cannot_do() -> None:
    platform = IntercomPlatform(intercom_target("https://api.intercom.io", TOKEN), inventory=inventory_of())
    for action in (Action.DISABLE, Action.ENABLE, Action.EXEMPT, Action.UNEXEMPT):
        with pytest.raises(EditNotPossible):
            platform.edit(workflow("live"), action, TAG)
    with pytest.raises(EditNotPossible, match="draft"):
        platform.edit(workflow("draft"), Action.MANUAL, TAG)
    unreadable = workflow(None, export="api_plan_restricted")
    assert platform.edit(unreadable, Action.MANUAL, TAG) is unreadable  # nothing the bot can verify


async def test_write_is_never_possible() -> None:
    platform = IntercomPlatform(intercom_target("https://api.intercom.io", TOKEN), inventory=inventory_of())
    with pytest.raises(EditNotPossible, match="a person must set it paused") as caught:
        await platform.write(workflow("paused"))
    assert "https://app.intercom.com/a/apps/abc/automation/workflows/101" in str(caught.value)
    await platform.aclose()


def test_declares_one_manual_kind_and_implements_the_protocol() -> None:
    platform = IntercomPlatform(intercom_target("https://api.intercom.io", TOKEN), inventory=inventory_of())
    assert isinstance(platform, Platform)
    assert (platform.name, platform.display_name) == ("intercom", "Intercom")
    assert list(platform.kinds) == ["workflow"]
    assert platform.kinds["workflow"].capabilities == frozenset({Capability.MANUAL})


def test_refuses_an_api_version_without_workflow_export() -> None:
    old = intercom_target("https://api.intercom.io", TOKEN, version="2.14")
    with pytest.raises(ValueError, match=r"2\.14 has no workflow export"):
        IntercomPlatform(old, inventory=inventory_of())
    bare = HttpTarget(httpx.AsyncClient(base_url="https://api.intercom.io"), rate_per_second=10)
    IntercomPlatform(bare, inventory=inventory_of())
    assert bare.client.headers["Intercom-Version"] == "2.16"
    IntercomPlatform(
        intercom_target("https://api.intercom.io", TOKEN, version="Preview"), inventory=inventory_of()
    )


def test_target_waits_for_intercoms_reset_header() -> None:
    target = intercom_target("https://api.intercom.io", TOKEN)
    assert target.reset_headers == ("X-RateLimit-Reset",)
    assert target.client.headers["Authorization"] == f"Bearer {TOKEN}"
    assert target.client.headers["Intercom-Version"] == "2.16"


# ----------------------------------------------------------------------------- reading workflows


@needs_specs
async def test_exports_live_paused_and_draft_workflows(fake: FakeIntercom) -> None:
    platform = platform_for(fake, "101", "102", "103", "101")
    automations = await platform.list_automations()
    assert [(a.id, a.name, a.enabled, a.definition["state"]) for a in automations] == [
        ("101", "Auto-reply to new conversations", True, "live"),
        ("102", "CSAT survey", False, "paused"),
        ("103", "Half-built routing", False, "draft"),
    ]
    first = automations[0]
    assert first.kind == "workflow"
    assert first.url == "https://app.intercom.com/a/apps/abc123de/automation/workflows/101"
    assert first.definition["targeting"] == {"channel": "email"}
    assert first.definition["trigger_type"] == "inbound_conversation"
    assert "updated_at" not in first.definition and "exported_at" not in first.definition
    assert first.updated_at == fake.workflows["101"]["updated_at"]
    assert fake.exports == {"101": 1, "102": 1, "103": 1}  # the duplicate id is exported once
    assert platform.missing == []
    await platform.aclose()


@needs_specs
async def test_a_person_pausing_the_workflow_is_exactly_the_planned_edit(fake: FakeIntercom) -> None:
    clock = SkewClock()
    fake.clock = clock
    platform = platform_for(fake, "101", clock=clock)
    before = await platform.get_automation("workflow", "101")
    clock.offset += 120
    assert await platform.get_automation("workflow", "101") == before  # exported_at moved; equal anyway
    planned = platform.edit(before, Action.MANUAL, TAG)
    fake.set_state("101", "paused")  # the person ticks the checklist item after doing this
    after = await platform.get_automation("workflow", "101")
    assert after == planned
    assert after.updated_at != before.updated_at
    fake.set_state("101", "live")
    assert await platform.get_automation("workflow", "101") == platform.edit(after, Action.MANUAL, TAG)
    fake.update_workflow("101", title="Auto-reply v2")  # someone else edited it meanwhile
    assert (await platform.get_automation("workflow", "101")) != before
    await platform.aclose()


@needs_specs
async def test_plan_restricted_export_is_not_a_crash(fake: FakeIntercom) -> None:
    fake.restrict_plan(True)
    platform = platform_for(fake, "101", "102")
    automations = await platform.list_automations()
    assert [(a.id, a.name, a.enabled, a.definition) for a in automations] == [
        ("101", "101", None, {"state": None, "export": "api_plan_restricted"}),
        ("102", "102", None, {"state": None, "export": "api_plan_restricted"}),
    ]
    assert automations[0].url == "https://app.intercom.com/a/apps/abc123de/automation/workflows/101"
    assert await platform.get_automation("workflow", "101") == automations[0]
    await platform.aclose()


@needs_specs
async def test_deleted_workflow_is_gone(fake: FakeIntercom) -> None:
    platform = platform_for(fake, "101", "999", "102")
    with pytest.raises(AutomationGone) as caught:
        await platform.get_automation("workflow", "999")
    assert caught.value.status == 404
    assert caught.value.code == "not_found"
    assert [a.id for a in await platform.list_automations()] == ["101", "102"]
    assert platform.missing == ["999"]
    with pytest.raises(PlatformError, match="only workflows"):
        await platform.get_automation("trigger", "101")
    await platform.aclose()


@needs_specs
async def test_app_id_is_asked_once_when_not_given(fake: FakeIntercom) -> None:
    platform = platform_for(fake, "101", "102", "103", app_id=None)
    automations = await platform.list_automations()
    assert {a.url.split("/")[5] for a in automations if a.url} == {fake.app_id_code}
    await platform.get_automation("workflow", "101")
    assert fake.calls_to("GET", "/me") == 1
    await platform.aclose()


@needs_specs
async def test_other_refusals_are_platform_errors(fake: FakeIntercom) -> None:
    target = intercom_target("https://api.intercom.io", "wrong", transport=httpx.ASGITransport(app=fake))
    platform = IntercomPlatform(target, inventory=inventory_of("101"), app_id="abc")
    with pytest.raises(PlatformError) as caught:
        await platform.list_automations()
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    assert not isinstance(caught.value, AutomationGone)
    await platform.aclose()


@needs_specs
async def test_server_errors_are_retried(fake: FakeIntercom) -> None:
    fake.inject_errors(503, count=2)
    platform = platform_for(fake, "101")
    assert [a.id for a in await platform.list_automations()] == ["101"]
    assert [call.status for call in fake.calls] == [503, 503, 200]
    await platform.aclose()


# ----------------------------------------------------------------------------- rate limits


@needs_specs
async def test_429_waits_until_x_ratelimit_reset() -> None:
    clock = SkewClock()
    # 2 calls per 10-second window; the current window began 2.5 s ago, so it resets in ~7.5 s
    fake = FakeIntercom(token=TOKEN, window_budget=2, clock=clock, window_origin=time.time() - 2.5)
    for index in range(5):
        fake.add_workflow(str(200 + index), f"Workflow {index}")
    platform = platform_for(fake, *(str(200 + index) for index in range(5)), clock=clock, concurrency=1)
    started = time.monotonic()
    automations = await platform.list_automations()
    assert [a.id for a in automations] == ["200", "201", "202", "203", "204"]
    assert time.monotonic() - started < 1.5  # the waits were slept on the skew clock, not for real
    # each wait came from X-RateLimit-Reset (not the 1 s fallback), and was long enough: no retry
    # landed in the window that refused it, so exactly one 429 per exhausted window
    assert fake.rate_limited == 2
    assert len(clock.sleeps) == 2
    assert 7.0 <= clock.sleeps[0] <= 8.6
    assert clock.sleeps[1] >= 7.0
    assert [call.status for call in fake.calls] == [200, 200, 429, 200, 200, 429, 200]
    fake.assert_conformant()
    await platform.aclose()


@needs_specs
async def test_still_rate_limited_after_retries_is_a_platform_error() -> None:
    clock = SkewClock()
    fake = FakeIntercom(token=TOKEN, window_budget=0, clock=clock)
    fake.add_workflow("1", "One")
    platform = platform_for(fake, "1", clock=clock)
    platform._http.max_attempts = 3
    with pytest.raises(PlatformError) as caught:
        await platform.get_automation("workflow", "1")
    assert caught.value.status == 429
    assert fake.rate_limited == 3
    await platform.aclose()


# ----------------------------------------------------------------------------- leak detection


@needs_specs
async def test_workflow_events_on_an_imported_conversation(fake: FakeIntercom) -> None:
    fake.add_part("555", "comment", body="<p>From 2019</p>", created_at=1_560_000_000)
    first = fake.add_workflow_part("555", "Auto-reply to new conversations", created_at=1_700_000_000)
    fake.add_part("555", "note", body="<p>internal</p>", created_at=1_700_000_050)
    second = fake.add_workflow_part(
        "555", "Tag VIPs", part_type="conversation_attribute_updated_by_workflow", created_at=1_700_000_100
    )
    platform = platform_for(fake)
    events = await platform.workflow_events("555")
    url = "https://app.intercom.com/a/inbox/abc123de/inbox/conversation/555"
    assert events == [
        WorkflowEvent(
            "555",
            first,
            "operator_workflow_event",
            "Auto-reply to new conversations",
            datetime.fromtimestamp(1_700_000_000, UTC),
            url,
        ),
        WorkflowEvent(
            "555",
            second,
            "conversation_attribute_updated_by_workflow",
            "Tag VIPs",
            datetime.fromtimestamp(1_700_000_100, UTC),
            url,
        ),
    ]
    fake.add_part("556", "comment", body="<p>quiet</p>")
    assert await platform.workflow_events("556") == []
    assert await platform.workflow_events("404404") == []
    await platform.aclose()


# ----------------------------------------------------------------------------- over a socket


@needs_specs
async def test_over_a_real_socket(fake: FakeIntercom) -> None:
    with serve_in_thread(fake) as base_url:
        target = intercom_target(base_url, TOKEN)
        platform = IntercomPlatform(target, inventory=inventory_of("101", "102"), app_id=None)
        automations = await platform.list_automations()
        fake.set_state("101", "paused")
        again = await platform.get_automation("workflow", "101")
        await platform.aclose()
    assert [a.enabled for a in automations] == [True, False]
    assert again == replace(
        automations[0], enabled=False, definition={**automations[0].definition, "state": "paused"}
    )
