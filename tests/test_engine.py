"""The guard engine on the sandbox and on the fake Zendesk, on each database backend."""

from __future__ import annotations

import pytest

from bot import engine, store
from bot.errors import ConflictError, PermissionDenied, UsageError
from bot.models import ChangeStatus, GuardStatus, RequestStatus
from bot.planning import PauseOptions
from tests.fakes.zendesk import FakeZendesk

ACTOR = "UREQUESTER"
MANAGER = "UMANAGER1"


ACTIONS = [{"field": "notification_user", "value": ["requester_id", "Hi", "We got it"]}]


def trigger(fake: FakeZendesk, title: str) -> dict:
    return fake.seed("trigger", title=title, active=True, actions=ACTIONS)


async def definitions(deps) -> dict:
    return {a.key: a.definition for a in await deps.platform.list_automations()}


async def test_pause_then_restore_leaves_the_sandbox_as_snapshotted(sandbox_deps):
    before = await definitions(sandbox_deps)
    outcome = await engine.request_pause(sandbox_deps, PauseOptions(), actor=ACTOR)
    assert outcome.request.status == RequestStatus.PENDING
    assert await definitions(sandbox_deps) == before, "a pending request changes nothing"

    await engine.decide(sandbox_deps, outcome.request.id, actor=MANAGER, approve=True)
    applied = await engine.apply(sandbox_deps, outcome.request.id, actor=MANAGER)
    assert applied.request.status == RequestStatus.APPLIED
    live = await sandbox_deps.platform.list_automations()
    assert not [a for a in live if a.enabled], "every toggleable automation is off"
    sla = next(a for a in live if a.kind == "sla_policy")
    assert {
        "field": "current_tags",
        "operator": "not_includes",
        "value": "migration_import",
    } in sla.definition["filter"]["all"]

    restore = await engine.request_restore(sandbox_deps, actor=ACTOR, approved=True)
    result = await engine.apply(sandbox_deps, restore.request.id, actor=ACTOR)
    assert result.request.status == RequestStatus.APPLIED
    assert result.differences == []
    assert await definitions(sandbox_deps) == before
    async with sandbox_deps.db.session() as session:
        guard = await store.get_guard(session, target="sandbox", platform="sandbox")
    assert guard.state == GuardStatus.LIVE


async def test_a_second_pause_is_refused_while_one_is_pending(sandbox_deps):
    await engine.request_pause(sandbox_deps, PauseOptions(), actor=ACTOR)
    with pytest.raises(ConflictError, match="already pending"):
        await engine.request_pause(sandbox_deps, PauseOptions(), actor=ACTOR)


async def test_restore_with_nothing_paused_is_refused(sandbox_deps):
    with pytest.raises(ConflictError, match="nothing to restore"):
        await engine.request_restore(sandbox_deps, actor=ACTOR)


async def test_unknown_kind_and_unknown_keep_name_are_usage_errors(sandbox_deps):
    with pytest.raises(UsageError, match="unknown kind macro"):
        await engine.request_pause(sandbox_deps, PauseOptions(only=frozenset({"macro"})), actor=ACTOR)
    with pytest.raises(UsageError, match="--keep names no automation: Nope"):
        await engine.request_pause(sandbox_deps, PauseOptions(keep=frozenset({"Nope"})), actor=ACTOR)
    async with sandbox_deps.db.session() as session:
        assert await store.latest_snapshot(session, target="sandbox") is None, "bad input stores nothing"


async def test_double_approval_decides_once(sandbox_deps):
    outcome = await engine.request_pause(sandbox_deps, PauseOptions(), actor=ACTOR)
    await engine.decide(sandbox_deps, outcome.request.id, actor=MANAGER, approve=True)
    with pytest.raises(ConflictError, match="already approved by UMANAGER1"):
        await engine.decide(sandbox_deps, outcome.request.id, actor="UMANAGER2", approve=True)


async def test_expired_request_cannot_be_approved(sandbox_deps):
    outcome = await engine.request_pause(sandbox_deps, PauseOptions(), actor=ACTOR)
    later = outcome.request.expires_at
    sandbox_deps.clock = lambda: later
    with pytest.raises(PermissionDenied, match="expired"):
        await engine.decide(sandbox_deps, outcome.request.id, actor=MANAGER, approve=True)


async def test_plan_is_stale_when_an_automation_changed_after_the_snapshot(
    zendesk_deps, fake_zendesk: FakeZendesk
):
    seeded = trigger(fake_zendesk, "Auto-reply")
    outcome = await engine.request_pause(zendesk_deps, PauseOptions(), actor=ACTOR)
    fake_zendesk.edit_as_person("trigger", seeded["id"], title="Auto-reply v2")
    await engine.decide(zendesk_deps, outcome.request.id, actor=MANAGER, approve=True)
    result = await engine.apply(zendesk_deps, outcome.request.id, actor=MANAGER)
    assert result.request.status == RequestStatus.STALE
    assert "Auto-reply was edited" in result.request.reason
    assert fake_zendesk.total_writes() == 0, "a stale plan is never applied"


async def test_conflicting_edit_is_left_alone_then_forced(zendesk_deps, fake_zendesk: FakeZendesk):
    edited = trigger(fake_zendesk, "CSAT survey")
    other = trigger(fake_zendesk, "Notify requester")
    pause = await engine.request_pause(zendesk_deps, PauseOptions(), actor=ACTOR, approved=True)
    await engine.apply(zendesk_deps, pause.request.id, actor=ACTOR)
    fake_zendesk.edit_as_person("trigger", edited["id"], title="CSAT survey (edited during pause)")

    restore = await engine.request_restore(zendesk_deps, actor=ACTOR, approved=True)
    by_name = {c.name: c for c in restore.changes}
    assert by_name["CSAT survey"].status == ChangeStatus.CONFLICT
    assert "title" in by_name["CSAT survey"].note
    result = await engine.apply(zendesk_deps, restore.request.id, actor=ACTOR)
    assert fake_zendesk.get("trigger", edited["id"])["active"] is False, "the conflict is left alone"
    assert fake_zendesk.get("trigger", other["id"])["active"] is True
    assert any("CSAT survey" in line for line in result.differences)

    forced_pause = await engine.request_pause(zendesk_deps, PauseOptions(), actor=ACTOR, approved=True)
    await engine.apply(zendesk_deps, forced_pause.request.id, actor=ACTOR)
    fake_zendesk.edit_as_person("trigger", other["id"], title="Notify requester (edited)")
    forced = await engine.request_restore(zendesk_deps, actor=ACTOR, force=True, approved=True)
    done = await engine.apply(zendesk_deps, forced.request.id, actor=ACTOR)
    assert done.request.status == RequestStatus.APPLIED
    assert fake_zendesk.get("trigger", other["id"])["title"] == "Notify requester"
    assert fake_zendesk.get("trigger", other["id"])["active"] is True
