"""Intercom's manual guard without Slack: the tracked inventory, the checklist steps verified by
exporting each workflow again, finalize once at the end, reminders as rows, and the pure blocks.
Runs against the fake Intercom, which answers as Intercom's OpenAPI description says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlmodel import select

from bot import checklist, engine, ids, store
from bot.blocks.checklist import (
    PAGE_ROWS,
    checklist_pages,
    checklist_reminder,
    leak_alert,
    page_of,
    step_text,
)
from bot.cli import build_parser
from bot.deps import Deps
from bot.errors import ConflictError, NotFound, PermissionDenied, PlatformError, UsageError
from bot.models import (
    AuditEvent,
    Change,
    ChangeRequest,
    ChangeStatus,
    GuardStatus,
    ImportRun,
    LeakAlert,
    Reminder,
    RequestStatus,
    TrackedWorkflow,
)
from bot.planning import PauseOptions
from bot.settings import Settings
from commands import REGISTRY, track, untrack
from commands.base import Context
from tests.conftest import make_deps, make_settings
from tests.fakes.intercom import SKIP_REASON, FakeIntercom, specs_available
from tests.fakes.slack import block_kit_errors

needs_specs = pytest.mark.skipif(not specs_available(), reason=SKIP_REASON)
TOKEN = "test-token"
REQUESTER = "UREQUESTER"
MANAGER = "UMANAGER1"
OUTSIDER = "UOUTSIDER"
LINK = "https://app.intercom.com/a/apps/abc123de/automation/workflows/{}"


def intercom_settings(database_url: str, **overrides: object) -> Settings:
    return make_settings(
        database_url,
        guard_platform="intercom",
        intercom_access_token=TOKEN,
        intercom_url="http://intercom.test",
        **overrides,
    )


@pytest.fixture
def intercom() -> Iterator[FakeIntercom]:
    if not specs_available():
        pytest.skip(SKIP_REASON)
    fake = FakeIntercom(token=TOKEN)
    fake.add_workflow("101", "Auto-reply to new conversations", state="live")
    fake.add_workflow("102", "CSAT survey", state="live", trigger_type="conversation_closed")
    fake.add_workflow("103", "Old routing", state="paused")
    fake.add_workflow("104", "Half-built bot", state="draft")
    yield fake
    fake.assert_conformant()


@pytest.fixture
async def deps(database_url: str, intercom: FakeIntercom) -> AsyncIterator[Deps]:
    deps = await make_deps(intercom_settings(database_url), httpx.ASGITransport(app=intercom))
    yield deps
    await deps.aclose()


async def approved_pause(deps: Deps, *refs: str) -> engine.Outcome:
    await track.track(deps, refs or ("101", "102", "103", "104"), actor=REQUESTER)
    outcome = await engine.request_pause(deps, PauseOptions(), actor=REQUESTER)
    await engine.decide(deps, outcome.request.id, actor=MANAGER, approve=True)
    return await engine.apply(deps, outcome.request.id, actor=MANAGER)


async def guard_state(deps: Deps) -> str:
    async with deps.db.session() as session:
        guard = await store.get_guard(session, target="intercom", platform="intercom")
        await session.commit()
        return guard.state


async def change_of(deps: Deps, request_id: str, workflow_id: str) -> Change:
    async with deps.db.session() as session:
        return next(
            c
            for c in await store.request_changes(session, request_id=request_id)
            if c.automation_id == workflow_id
        )


async def rows(deps: Deps, model: type, **where: object) -> list:
    async with deps.db.session() as session:
        query = select(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return list(await session.exec(query))


# ---- the inventory ----------------------------------------------------------------------------


@needs_specs
async def test_track_exports_each_workflow_once_and_stores_its_title(deps, intercom):
    ctx = Context(deps=deps, actor=REQUESTER, surface="slack")
    args = REGISTRY["track"]
    parser = build_parser()
    parsed = parser.parse_args(["track", LINK.format(101), "<" + LINK.format(102) + "|CSAT>", "101"])
    reply = await args.run(parsed, ctx)
    assert "Auto-reply to new conversations" in reply.text and "CSAT survey" in reply.text
    assert [(r.workflow_id, r.title, r.added_by) for r in await rows(deps, TrackedWorkflow)] == [
        ("101", "Auto-reply to new conversations", REQUESTER),
        ("102", "CSAT survey", REQUESTER),
    ]
    assert intercom.exports == {"101": 1, "102": 1}, "each workflow exported once to validate it"
    again = await args.run(parser.parse_args(["track", "102"]), ctx)
    assert "Already tracked: 102 (CSAT survey)" in again.text
    listing = await args.run(parser.parse_args(["track"]), ctx)
    assert "Tracked Intercom workflows (2)" in listing.text


@needs_specs
async def test_an_unknown_workflow_is_refused_and_nothing_is_tracked(deps, intercom):
    with pytest.raises(NotFound, match=r"Intercom has no workflow 999 \(404\)"):
        await track.track(deps, ["101", LINK.format(999)], actor=REQUESTER)
    assert await rows(deps, TrackedWorkflow) == []


@needs_specs
async def test_plan_restricted_export_is_tracked_and_says_it_cannot_be_verified(deps, intercom):
    intercom.restrict_plan()
    result = await track.track(deps, ["101"], actor=REQUESTER, title="Auto-reply")
    text = track.describe(result)
    assert "Cannot verify 101" in text and "api_plan_restricted" in text and "checklist" in text
    assert [(r.workflow_id, r.title) for r in await rows(deps, TrackedWorkflow)] == [("101", "Auto-reply")]


@needs_specs
async def test_nothing_tracked_is_no_pause(deps, intercom):
    with pytest.raises(PlatformError, match="no workflows are tracked yet") as caught:
        await engine.request_pause(deps, PauseOptions(), actor=REQUESTER)
    assert caught.value.code == "nothing_tracked"
    assert await guard_state(deps) == GuardStatus.LIVE and await rows(deps, ChangeRequest) == []


@needs_specs
async def test_bad_references_are_usage_errors(deps, intercom):
    with pytest.raises(UsageError, match="not an Intercom workflow"):
        await track.track(deps, ["https://example.com/workflows/1"], actor=REQUESTER)
    with pytest.raises(UsageError, match="--title names one workflow"):
        await track.track(deps, ["101", "102"], actor=REQUESTER, title="x")
    assert intercom.exports == {}


@needs_specs
async def test_cli_track_and_untrack(sqlite_url, intercom, capsys):
    from bot import cli
    from tests.fakes.intercom import serve_in_thread

    with serve_in_thread(intercom) as base_url:
        settings = make_settings(
            sqlite_url, guard_platform="intercom", intercom_access_token=TOKEN, intercom_url=base_url
        )
        assert await cli.run(build_parser().parse_args(["track", LINK.format(101), "102"]), settings) == 0
        assert "Now tracking 2 Intercom workflow(s)" in capsys.readouterr().out
        assert await cli.run(build_parser().parse_args(["track", "999"]), settings) == 1
        assert "Intercom has no workflow 999" in capsys.readouterr().err
        assert await cli.run(build_parser().parse_args(["track", "not-a-workflow"]), settings) == 2
        assert await cli.run(build_parser().parse_args(["untrack", "102", "--json"]), settings) == 0
        assert '"removed": [\n      "102"\n    ]' in capsys.readouterr().out


async def test_track_is_for_intercom_only(sandbox_deps):
    ctx = Context(deps=sandbox_deps, actor=REQUESTER, surface="cli")
    for name in ("track", "untrack"):
        args = build_parser().parse_args([name, "101"])
        with pytest.raises(UsageError, match="for Intercom only"):
            await REGISTRY[name].run(args, ctx)


@needs_specs
async def test_untrack_is_refused_while_a_pause_holds_the_workflow(deps, intercom):
    outcome = await approved_pause(deps)
    with pytest.raises(ConflictError, match=f"101 \\({outcome.request.id}\\)"):
        await untrack.untrack(deps, ["101", "104"], actor=REQUESTER)
    assert len(await rows(deps, TrackedWorkflow)) == 4, "all or nothing"
    removed, unknown = await untrack.untrack(deps, ["104", "555"], actor=REQUESTER)
    assert [r.workflow_id for r in removed] == ["104"] and unknown == ["555"]
    assert [r.workflow_id for r in await rows(deps, TrackedWorkflow)] == ["101", "102", "103"]


# ---- the checklist ----------------------------------------------------------------------------


@needs_specs
async def test_pause_and_restore_by_checklist_verified_through_the_export(deps, intercom):
    at_snapshot = {wid: w["state"] for wid, w in intercom.workflows.items()}
    outcome = await approved_pause(deps)
    pause_id = outcome.request.id
    assert {c.automation_id: c.action for c in outcome.changes} == {"101": "manual", "102": "manual"}
    assert outcome.request.status == RequestStatus.APPLYING
    assert checklist.needs_checklist(outcome)
    assert await guard_state(deps) == GuardStatus.PAUSING
    assert outcome.changes[0].url == LINK.format(101)

    first = await change_of(deps, pause_id, "101")
    result = await checklist.confirm_step(deps, first.id, REQUESTER)  # ticked, but still live in Intercom
    assert (result.verification, result.seen, result.remaining) == ("mismatch", "live", 2)
    first = await change_of(deps, pause_id, "101")
    assert first.status == ChangeStatus.PLANNED and first.note == "marked paused, Intercom says live"
    assert first.confirmed_by == REQUESTER and first.confirmed_at is not None
    assert await guard_state(deps) == GuardStatus.PAUSING

    intercom.set_state("101", "paused")
    result = await checklist.confirm_step(deps, first.id, REQUESTER)
    assert (result.verification, result.remaining, result.outcome) == ("verified", 1, None)
    assert (await checklist.confirm_step(deps, first.id, MANAGER)).already
    assert await guard_state(deps) == GuardStatus.PAUSING, "pausing until every step is done"

    intercom.set_state("102", "paused")
    last = await checklist.confirm_step(deps, (await change_of(deps, pause_id, "102")).id, MANAGER)
    assert last.outcome is not None and last.outcome.request.status == RequestStatus.APPLIED
    assert await guard_state(deps) == GuardStatus.PAUSED

    restore = await engine.request_restore(deps, actor=REQUESTER)
    assert {c.automation_id: (c.action, c.after["state"]) for c in restore.changes} == {
        "101": ("manual", "live"),
        "102": ("manual", "live"),
    }, "exactly the workflows that were live at the snapshot"
    await engine.decide(deps, restore.request.id, actor=MANAGER, approve=True)
    applying = await engine.apply(deps, restore.request.id, actor=MANAGER)
    assert applying.request.status == RequestStatus.APPLYING
    assert await guard_state(deps) == GuardStatus.RESTORING
    for workflow_id in ("101", "102"):
        intercom.set_state(workflow_id, "live")
        step = await change_of(deps, restore.request.id, workflow_id)
        done = await checklist.confirm_step(deps, step.id, REQUESTER)
        assert done.verification == "verified"
    assert done.outcome is not None and done.outcome.request.status == RequestStatus.APPLIED
    assert done.outcome.differences == []
    assert await guard_state(deps) == GuardStatus.LIVE
    assert {wid: w["state"] for wid, w in intercom.workflows.items()} == at_snapshot


@needs_specs
async def test_restore_step_is_verified_against_the_snapshot_state(deps, intercom):
    outcome = await approved_pause(deps, "101")
    intercom.set_state("101", "paused")
    await checklist.confirm_step(deps, outcome.changes[0].id, REQUESTER)
    restore = await engine.request_restore(deps, actor=REQUESTER, approved=True)
    await engine.apply(deps, restore.request.id, actor=REQUESTER)
    step = restore.changes[0]
    result = await checklist.confirm_step(deps, step.id, REQUESTER)
    assert (result.verification, result.seen) == ("mismatch", "paused")
    assert (await change_of(deps, restore.request.id, "101")).note == "marked set live, Intercom says paused"
    intercom.set_state("101", "draft")
    assert (await checklist.confirm_step(deps, step.id, REQUESTER)).verification == "mismatch"
    assert await guard_state(deps) == GuardStatus.RESTORING


@needs_specs
async def test_plan_restricted_steps_are_confirmed_by_people_who_may_vouch(deps, intercom):
    intercom.restrict_plan()
    outcome = await approved_pause(deps, "101", "103")
    # the bot cannot read states, so even the paused 103 is on the checklist ("pause it if live")
    assert [(c.automation_id, c.before, c.after) for c in outcome.changes] == [
        (
            "101",
            {"state": None, "export": "api_plan_restricted"},
            {"state": None, "export": "api_plan_restricted"},
        ),
        (
            "103",
            {"state": None, "export": "api_plan_restricted"},
            {"state": None, "export": "api_plan_restricted"},
        ),
    ]
    settings = deps.settings

    async def is_member(user: str, group: list[str]) -> bool:
        return user in ("UONCALL1",) and group == [*settings.guard_approvers, *settings.guard_oncall]

    with pytest.raises(PermissionDenied, match="only the requester, the approvers and on-call"):
        await checklist.confirm_step(deps, outcome.changes[0].id, OUTSIDER, is_member=is_member)
    assert (await change_of(deps, outcome.request.id, "101")).confirmed_by is None, "nothing recorded"
    first = await checklist.confirm_step(deps, outcome.changes[0].id, REQUESTER, is_member=is_member)
    assert (first.verification, first.change.status) == ("unverifiable", "done")
    assert "not verifiable" in (first.change.note or "")
    last = await checklist.confirm_step(deps, outcome.changes[1].id, "UONCALL1", is_member=is_member)
    assert last.outcome is not None and last.outcome.request.status == RequestStatus.APPLIED
    assert await guard_state(deps) == GuardStatus.PAUSED


@needs_specs
async def test_a_workflow_deleted_during_the_checklist_is_skipped_and_not_restored(deps, intercom):
    outcome = await approved_pause(deps, "101", "102")
    intercom.delete_workflow("102")
    gone = await checklist.confirm_step(deps, outcome.changes[1].id, REQUESTER)
    assert (gone.change.status, gone.change.note, gone.verification) == (
        "skipped",
        "deleted in Intercom",
        None,
    )
    intercom.set_state("101", "paused")
    await checklist.confirm_step(deps, outcome.changes[0].id, REQUESTER)
    restore = await engine.request_restore(deps, actor=REQUESTER)
    assert [c.automation_id for c in restore.changes] == ["101"]


@needs_specs
async def test_the_last_two_steps_ticked_at_once_finalize_once(deps, intercom):
    outcome = await approved_pause(deps, "101", "102")
    intercom.set_state("101", "paused")
    intercom.set_state("102", "paused")
    results = await asyncio.gather(
        *(checklist.confirm_step(deps, change.id, REQUESTER) for change in outcome.changes)
    )
    assert sorted(r.outcome is not None for r in results) == [False, True]
    finished = await rows(deps, AuditEvent, action="pause_applied")
    assert len(finished) == 1
    assert await guard_state(deps) == GuardStatus.PAUSED


@needs_specs
async def test_checklist_steps_refuse_what_is_not_theirs(deps, intercom):
    with pytest.raises(NotFound):
        await checklist.confirm_step(deps, 4242, REQUESTER)
    outcome = await approved_pause(deps, "101")
    async with deps.db.session() as session:
        await store.compare_and_set_status(
            session, request_id=outcome.request.id, expected=["applying"], status="failed"
        )
        await session.commit()
    with pytest.raises(ConflictError, match="is closed: the request is failed"):
        await checklist.confirm_step(deps, outcome.changes[0].id, REQUESTER)


async def test_api_changes_are_not_checklist_steps(sandbox_deps):
    outcome = await engine.request_pause(sandbox_deps, PauseOptions(), actor=REQUESTER)
    with pytest.raises(ConflictError, match="not by hand"):
        await checklist.confirm_step(sandbox_deps, outcome.changes[0].id, REQUESTER)


@needs_specs
async def test_an_open_checklist_keeps_one_reminder_until_it_is_done(deps, intercom):
    now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    deps.clock = lambda: now
    outcome = await approved_pause(deps, "101", "102")
    await checklist.record_posted(
        deps, outcome.request, channel="C0MIGRATION", pages=["1.1"], thread_ts="1.0"
    )
    await checklist.record_posted(
        deps, outcome.request, channel="C0MIGRATION", pages=["1.1"], thread_ts="1.0"
    )
    [reminder] = await rows(deps, Reminder, kind="checklist")
    assert reminder.status == "scheduled" and reminder.request_id == outcome.request.id
    assert reminder.due_at == now + timedelta(hours=1), "GUARD_REMIND_EVERY (4h), capped at an hour"
    assert reminder.slack_ts is None, "the reminder clock records where it posts"
    assert reminder.payload["open"] == 2 and reminder.payload["checklist"]["pages"] == ["1.1"]
    assert (await checklist.location(deps, outcome.request.id))["thread_ts"] == "1.0"

    intercom.set_state("101", "paused")
    await checklist.confirm_step(deps, outcome.changes[0].id, REQUESTER)
    assert len(await rows(deps, Reminder, kind="checklist")) == 1, "still exactly one"

    async with deps.db.session() as session:  # the clock delivered it; the next one follows
        delivered = await session.get(Reminder, reminder.id)
        delivered.status = "delivered"
        session.add(delivered)
        upcoming = await checklist.next_checklist_reminder(session, deps, delivered)
        await session.commit()
    assert upcoming is not None and upcoming.payload["open"] == 1

    intercom.set_state("102", "paused")
    await checklist.confirm_step(deps, outcome.changes[1].id, REQUESTER)
    assert {r.status for r in await rows(deps, Reminder, kind="checklist")} == {"delivered", "cancelled"}


# ---- blocks (pure) ----------------------------------------------------------------------------


def _request(kind: str = "pause") -> ChangeRequest:
    return ChangeRequest(
        id="cr_1", target="intercom", kind=kind, status="applying", snapshot_id="snap_1",
        requester=REQUESTER, decided_by=MANAGER,
    )  # fmt: skip


def _step(index: int, **fields: object) -> Change:
    values: dict = {
        "id": index, "request_id": "cr_1", "position": index, "kind": "workflow", "automation_id": str(index),
        "name": f"Workflow {index}", "action": "manual", "before": {"state": "live"},
        "after": {"state": "paused"}, "url": LINK.format(index),
    }  # fmt: skip
    values.update(fields)
    return Change(**values)


def test_long_checklists_come_in_pages_that_slack_accepts():
    steps = [_step(i) for i in range(1, 86)]
    view = checklist.Checklist(_request(), steps, {"1": "Auto-reply"}, "pausing", steps)
    pages = checklist_pages(view)
    assert len(pages) == 3
    for text, blocks in pages:
        assert block_kit_errors(blocks) == [] and len(blocks) <= 50 and text
    buttons = [b["accessory"] for _, blocks in pages for b in blocks if "accessory" in b]
    assert [b["value"] for b in buttons] == [str(i) for i in range(1, 86)]
    assert {b["action_id"] for b in buttons} == {ids.CONFIRM_MANUAL_STEP}
    assert {b["text"]["text"] for b in buttons} == {"Paused it"}
    assert "*0/85* done" in pages[0][1][2]["text"]["text"]
    assert "<https://app.intercom.com/a/apps/abc123de/automation/workflows/1|Auto-reply>" in str(pages[0][1])
    assert page_of(view, 85) == 85 // PAGE_ROWS


def test_rows_say_what_happened():
    view = checklist.Checklist(_request("restore"), [], {}, "restoring")
    mismatch = _step(
        1, verification="mismatch", note="marked set live, Intercom says paused", confirmed_by="U1"
    )
    assert ":warning:" in step_text(mismatch, view) and "Intercom says paused" in step_text(mismatch, view)
    hidden = _step(2, before={"state": None, "export": "api_plan_restricted"}, after={"state": None})
    assert ":lock:" in step_text(hidden, view) and "Set it live" in step_text(hidden, view)
    vouched = _step(3, status="done", verification="unverifiable", confirmed_by="U1")
    assert "on the word of <@U1>" in step_text(vouched, view)
    verified = _step(4, status="done", verification="verified", confirmed_by="U1")
    assert "verified in Intercom" in step_text(verified, view)


def test_checklist_reminder_names_who_and_what_is_open():
    steps = [_step(1), _step(2, status="done", verification="verified"), _step(3, verification="mismatch")]
    view = checklist.Checklist(_request(), steps, {"1": "Auto-reply"}, "pausing", steps)
    text, blocks = checklist_reminder(view, notify=["UONCALL1", REQUESTER])
    assert text.startswith(f"<@{REQUESTER}> <@UONCALL1> 2 of 3 Intercom workflow(s) still to pause by hand")
    assert "Auto-reply" in str(blocks) and "Workflow 3" in str(blocks) and "Workflow 2" not in str(blocks)
    assert block_kit_errors(blocks) == []


def test_leak_alert_names_workflow_and_conversation_with_links():
    run = ImportRun(id="run_1", target="intercom", name="Zendesk history")
    alerts = [
        LeakAlert(id=i, run_id="run_1", record_id=str(500 + i), part_id=str(i), workflow="Auto-reply",
                  part_type="operator_workflow_event")
        for i in range(20)
    ]  # fmt: skip
    text, blocks = leak_alert(
        run,
        alerts,
        conversation_links={"500": "https://app.intercom.com/a/inbox/abc/inbox/conversation/500"},
        workflow_links={"auto-reply": LINK.format(101)},
        notify=["UONCALL1"],
    )
    body = str(blocks)
    assert "Auto-reply acted on 20 imported conversation(s)" in text
    assert "<https://app.intercom.com/a/inbox/abc/inbox/conversation/500|conversation 500>" in body
    assert f"<{LINK.format(101)}|Auto-reply>" in body and "<@UONCALL1>" in body and "…and 5 more" in body
    assert block_kit_errors(blocks) == []
