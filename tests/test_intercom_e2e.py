"""Intercom end to end through POST /slack/events: track workflows, pause with approval, tick the
checklist (a mismatch flagged, then verified), restore by the same checklist, a leak alert in the
import's thread; and the plan that refuses workflow export, guarded by people's word."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot import ids, store
from bot.models import GuardStatus, ImportRun
from tests.conftest import make_settings
from tests.fakes.intercom import SKIP_REASON, FakeIntercom, specs_available
from tests.fakes.slack import FakeSlack
from tests.slack_harness import (
    CHANNEL,
    MANAGER,
    ONCALL,
    OUTSIDER,
    REQUESTER,
    SLACK_SETTINGS,
    Bot,
    fake_slack,
    running_bot,
)

pytestmark = pytest.mark.skipif(not specs_available(), reason=SKIP_REASON)
LINK = "https://app.intercom.com/a/apps/abc123de/automation/workflows/{}"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with fake_slack() as fake:
        yield fake


@pytest.fixture
def intercom() -> Iterator[FakeIntercom]:
    fake = FakeIntercom(token="test-token")
    fake.add_workflow("101", "Auto-reply to new conversations", state="live")
    fake.add_workflow("102", "CSAT survey", state="live", trigger_type="conversation_closed")
    fake.add_workflow("103", "Old routing", state="paused")
    yield fake
    fake.assert_conformant()


def settings(database_url: str):  # type: ignore[no-untyped-def]
    return make_settings(
        database_url,
        guard_platform="intercom",
        intercom_access_token="test-token",
        intercom_url="http://intercom.test",
        **SLACK_SETTINGS,
    )


def text_of(message: dict[str, Any]) -> str:
    parts = [message.get("text") or ""]
    for block in message.get("blocks") or []:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        parts += [f["text"] for f in block.get("fields", [])]
        parts += [e.get("text", "") for e in block.get("elements", []) if isinstance(e.get("text"), str)]
    return "\n".join(parts)


def card_buttons(message: dict[str, Any]) -> dict[str, str]:
    return {
        e["action_id"]: e["value"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
    }


def step_buttons(message: dict[str, Any]) -> dict[str, str]:
    """Workflow id (from the row's text) -> change id (the button's value)."""
    found = {}
    for block in message["blocks"]:
        accessory = block.get("accessory")
        if accessory and accessory["action_id"] == ids.CONFIRM_MANUAL_STEP:
            workflow_id = block["text"]["text"].split("`")[1]
            found[workflow_id] = accessory["value"]
    return found


async def approve(bot: Bot, card: dict[str, Any]) -> dict[str, Any]:
    """Approve a card; returns the checklist posted in its thread."""
    await bot.click(
        ids.APPROVE_REQUEST, card_buttons(card)[ids.APPROVE_REQUEST], user=MANAGER, message_ts=card["ts"]
    )
    [checklist] = [m for m in bot.fake.replies(CHANNEL, card["ts"]) if m.get("bot_id")]
    return checklist


async def tick(
    bot: Bot, checklist: dict[str, Any], workflow_id: str, user: str = REQUESTER
) -> dict[str, Any]:
    value = step_buttons(checklist)[workflow_id]
    await bot.click(ids.CONFIRM_MANUAL_STEP, value, user=user, message_ts=checklist["ts"])
    return bot.fake.message(CHANNEL, checklist["ts"])


async def guard(bot: Bot) -> str:
    async with bot.deps.db.session() as session:
        row = await store.get_guard(session, target="intercom", platform="intercom")
        await session.commit()
        return row.state


async def test_intercom_freeze_through_slack(database_url, slack, intercom):
    at_snapshot = {wid: w["state"] for wid, w in intercom.workflows.items()}
    async with running_bot(settings(database_url), slack, httpx.ASGITransport(app=intercom)) as bot:
        await bot.command("pause")
        assert any("no workflows are tracked yet" in t for t in bot.said_to(REQUESTER))
        assert bot.bot_messages() == [], "no card for a pause of nothing"
        await bot.command(f"track {LINK.format(101)} <{LINK.format(102)}> 103")
        said = "\n".join(bot.said_to(REQUESTER))
        assert "Now tracking 3 Intercom workflow(s)" in said
        assert "101 (Auto-reply to new conversations): live" in said and "103 (Old routing): paused" in said
        await bot.command("track 999")
        assert any("Intercom has no workflow 999 (404)" in t for t in bot.said_to(REQUESTER))

        # ---- pause: the card reminds what Intercom can and cannot suppress
        await bot.command("pause")
        [card] = bot.bot_messages()
        assert "skip_notifications" in text_of(card) and "POST /conversations" in text_of(card)
        assert "*2* by hand (checklist)" in text_of(card), "the paused workflow 103 is left alone"
        checklist = await approve(bot, card)
        assert "0/2" in text_of(slack.message(CHANNEL, card["ts"])), "the card shows the checklist's progress"
        assert set(step_buttons(checklist)) == {"101", "102"}
        assert "*0/2* done" in text_of(checklist) and f"<{LINK.format(101)}|" in text_of(checklist)
        assert await guard(bot) == GuardStatus.PAUSING

        # ---- a tick Intercom contradicts is flagged, and the step stays open
        checklist = await tick(bot, checklist, "101")
        notices = [m for m in slack.replies(CHANNEL, card["ts"]) if m["ts"] != checklist["ts"]]
        assert any("marked paused, Intercom says live" in text_of(m) for m in notices)
        assert "101" in step_buttons(checklist) and "*0/2* done" in text_of(checklist)
        assert ":warning: 1 flagged" in text_of(checklist)

        intercom.set_state("101", "paused")
        checklist = await tick(bot, checklist, "101")
        assert set(step_buttons(checklist)) == {"102"} and "*1/2* done" in text_of(checklist)
        assert "1/2" in text_of(slack.message(CHANNEL, card["ts"]))
        assert await guard(bot) == GuardStatus.PAUSING

        intercom.set_state("102", "paused")
        checklist = await tick(bot, checklist, "102", user=MANAGER)
        assert step_buttons(checklist) == {} and "All done: the guard is *paused*" in text_of(checklist)
        assert "applied" in text_of(slack.message(CHANNEL, card["ts"]))
        assert any(
            "complete: every workflow is paused" in text_of(m) for m in slack.replies(CHANNEL, card["ts"])
        )
        assert await guard(bot) == GuardStatus.PAUSED

        # ---- leak watch while the import runs: the import script reports batches through the API,
        # and a workflow part on an imported conversation is alerted in the run's thread, once
        intercom.add_part("9001", "comment", body="<p>Order 2019-1</p>")
        intercom.add_workflow_part("9001", "CSAT survey")
        intercom.add_part("9002", "comment", body="<p>Order 2019-2</p>")
        auth = {"Authorization": "Bearer test-api-token"}
        run = await bot.http.post(
            "/api/v1/runs", json={"name": "Zendesk history", "total_batches": 2}, headers=auth
        )
        run_id = run.json()["id"]
        await bot.slack.drain()
        async with bot.deps.db.session() as session:
            progress_ts = (await session.get(ImportRun, run_id)).slack_ts
        assert progress_ts, "the run's progress message is posted when the run starts"
        for number in (1, 2):
            answer = await bot.http.post(
                f"/api/v1/runs/{run_id}/batches",
                json={"batch": number, "ok": 2, "failed": 0, "record_ids": ["9001", "9002"]},
                headers=auth,
            )
            assert answer.status_code in (200, 201), answer.text
            await bot.slack.drain()
        alerts = [r for r in bot.fake.replies(CHANNEL, progress_ts) if "CSAT survey" in text_of(r)]
        assert len(alerts) == 1, "each workflow part is alerted once, in the run's thread"
        body = text_of(alerts[0])
        assert f"<{LINK.format(102)}|CSAT survey>" in body
        assert "<https://app.intercom.com/a/inbox/abc123de/inbox/conversation/9001|conversation 9001>" in body
        assert f"<@{ONCALL}>" in body and "conversation 9002" not in body

        # ---- restore: the same checklist sets live exactly what was live at the snapshot
        await bot.command("restore")
        restore_card = bot.bot_messages()[-1]
        assert restore_card["ts"] != card["ts"] and "Restore automations" in text_of(restore_card)
        checklist = await approve(bot, restore_card)
        assert set(step_buttons(checklist)) == {"101", "102"} and "Set it live" in str(checklist["blocks"])
        assert await guard(bot) == GuardStatus.RESTORING
        for workflow_id in ("101", "102"):
            intercom.set_state(workflow_id, "live")
            checklist = await tick(bot, checklist, workflow_id)
        assert "All done: the guard is *live*" in text_of(checklist)
        assert "applied" in text_of(slack.message(CHANNEL, restore_card["ts"]))
        assert await guard(bot) == GuardStatus.LIVE
        assert {wid: w["state"] for wid, w in intercom.workflows.items()} == at_snapshot
    slack.assert_no_spec_violations()


async def test_plan_that_refuses_export_gets_a_working_manual_checklist(database_url, slack, intercom):
    intercom.restrict_plan()
    async with running_bot(settings(database_url), slack, httpx.ASGITransport(app=intercom)) as bot:
        await bot.command(f'track {LINK.format(101)} --title "Auto-reply"')
        said = "\n".join(bot.said_to(REQUESTER))
        assert "Now tracking 1" in said and "101 (Auto-reply): state unknown" in said
        assert "plan refuses workflow export (403 api_plan_restricted)" in said

        await bot.command("pause")
        [card] = bot.bot_messages()
        checklist = await approve(bot, card)
        assert ":lock:" in text_of(checklist) and "Auto-reply" in text_of(checklist)
        assert "Intercom's plan hides its state" in text_of(checklist)

        checklist = await tick(bot, checklist, "101", user=OUTSIDER)
        assert any("only the requester, the approvers and on-call" in t for t in bot.said_to(OUTSIDER))
        assert "101" in step_buttons(checklist), "nobody vouched yet"

        checklist = await tick(bot, checklist, "101", user=REQUESTER)
        assert f"on the word of <@{REQUESTER}>" in text_of(checklist)
        assert "cannot verify" in text_of(checklist)
        assert "applied" in text_of(slack.message(CHANNEL, card["ts"]))
        assert await guard(bot) == GuardStatus.PAUSED

        await bot.command("restore")
        restore_card = bot.bot_messages()[-1]
        checklist = await approve(bot, restore_card)
        assert ":lock:" in text_of(checklist) and "Set it live" in str(checklist["blocks"])
        checklist = await tick(bot, checklist, "101", user=MANAGER)
        assert await guard(bot) == GuardStatus.LIVE
    slack.assert_no_spec_violations()


async def test_a_long_checklist_is_paged_and_each_page_stays_current(database_url, slack, intercom):
    for index in range(45):
        intercom.add_workflow(str(200 + index), f"Workflow {index}", state="live")
    async with running_bot(settings(database_url), slack, httpx.ASGITransport(app=intercom)) as bot:
        await bot.command("track " + " ".join(str(200 + index) for index in range(45)))
        await bot.command("pause")
        [card] = bot.bot_messages()
        await bot.click(
            ids.APPROVE_REQUEST, card_buttons(card)[ids.APPROVE_REQUEST], user=MANAGER, message_ts=card["ts"]
        )
        first, second = [m for m in slack.replies(CHANNEL, card["ts"]) if m.get("bot_id")]
        assert len(step_buttons(first)) == 40 and len(step_buttons(second)) == 5
        assert "*0/45* done" in text_of(first)
        intercom.set_state("244", "paused")
        await tick(bot, second, "244")
        assert "*1/45* done" in text_of(slack.message(CHANNEL, first["ts"])), "progress on page one"
        assert "244" not in step_buttons(slack.message(CHANNEL, second["ts"]))
    slack.assert_no_spec_violations()


async def test_track_elsewhere_is_a_usage_error(database_url, slack):
    async with running_bot(make_settings(database_url, **SLACK_SETTINGS), slack) as bot:
        response = await bot.command("track 101")
        assert response.status_code == 200
        assert any("for Intercom only" in t for t in bot.said_to(REQUESTER))
        assert bot.bot_messages() == []


async def test_open_checklist_is_nagged_in_its_thread_until_done(database_url, slack, intercom):
    from datetime import timedelta

    from bot import reminders
    from bot.slack.reminders import deliverer

    async with running_bot(settings(database_url), slack, httpx.ASGITransport(app=intercom)) as bot:
        await bot.command("track 101 102")
        await bot.command("pause")
        card = bot.bot_messages()[-1]
        checklist = await approve(bot, card)
        later = bot.deps.clock() + timedelta(hours=5)
        bot.deps.clock = lambda: later
        delivered = await reminders.tick(bot.deps, deliverer(bot.slack), worker_id="test", now=later)
        assert delivered >= 1
        nags = [m for m in slack.replies(CHANNEL, card["ts"]) if "still to pause by hand" in text_of(m)]
        assert len(nags) == 1 and "Auto-reply to new conversations" in text_of(nags[0])
        again = await reminders.next_reminder(bot.deps)
        assert again is not None and again.kind == "checklist", "it keeps nagging while steps are open"

        intercom.set_state("101", "paused")
        intercom.set_state("102", "paused")
        await tick(bot, checklist, "101")
        await tick(bot, checklist, "102")
        assert await guard(bot) == GuardStatus.PAUSED
        later = later + timedelta(hours=5)
        await reminders.tick(bot.deps, deliverer(bot.slack), worker_id="test", now=later)
        nags = [m for m in slack.replies(CHANNEL, card["ts"]) if "still to pause by hand" in text_of(m)]
        assert len(nags) == 1, "a finished checklist is not nagged again"
