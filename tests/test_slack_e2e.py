"""End to end through POST /slack/events: pause -> approval card -> refusals -> approval -> the
fake Zendesk changes -> outcome on the card -> restore the same way -> Zendesk equals the snapshot."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bot import ids, store
from bot.db import upgrade
from tests.conftest import make_settings, zendesk_settings
from tests.fakes.zendesk import FakeZendesk
from tests.slack_harness import (
    CHANNEL,
    MANAGER,
    OUTSIDER,
    REQUESTER,
    SLACK_SETTINGS,
    fake_slack,
    running_bot,
)
from tests.slack_signing import signed_headers, slash_command_body

ACTIONS = [{"field": "notification_user", "value": ["requester_id", "Hi", "We got it"]}]


@pytest.fixture
def slack():
    with fake_slack() as fake:
        yield fake


def seed(fake: FakeZendesk, n: int = 5) -> None:
    for i in range(n):
        fake.seed("trigger", title=f"Auto-reply {i}", active=True, actions=ACTIONS)
    fake.seed("trigger", title="Dormant", active=False, actions=ACTIONS)
    fake.seed(
        "sla_policy",
        title="Standard SLA",
        filter={"all": [], "any": []},
        policy_metrics=[
            {"priority": "normal", "metric": "first_reply_time", "target": 60, "business_hours": False}
        ],
    )


KINDS = ("trigger", "automation", "sla_policy")


def state(fake: FakeZendesk) -> dict:
    return {
        (kind, o["id"]): {k: v for k, v in o.items() if k != "updated_at"}
        for kind in KINDS
        for o in fake.all(kind)
    }


def buttons(message: dict) -> dict[str, str]:
    return {
        e["action_id"]: e["value"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
    }


def card_text(message: dict) -> str:
    parts = []
    for block in message["blocks"]:
        if "text" in block and isinstance(block["text"], dict):
            parts.append(block["text"]["text"])
        parts += [f["text"] for f in block.get("fields", [])]
        parts += [e.get("text", "") for e in block.get("elements", []) if isinstance(e.get("text"), str)]
    return "\n".join(parts)


async def test_pause_and_restore_through_slack(database_url, slack):
    zendesk = FakeZendesk(rate_limit=100_000)
    seed(zendesk)
    before = state(zendesk)
    settings = zendesk_settings(database_url, **SLACK_SETTINGS)
    async with running_bot(settings, slack, httpx.ASGITransport(app=zendesk)) as bot:
        response = await bot.command("pause --mode disable")
        assert response.status_code == 200
        [card] = bot.bot_messages()
        request_id = buttons(card)[ids.APPROVE_REQUEST]
        assert buttons(card) == {ids.APPROVE_REQUEST: request_id, ids.REJECT_REQUEST: request_id}
        assert "*5* switch off" in card_text(card) and "*1* skip imported records" in card_text(card)
        assert any(
            f["filename"].endswith(".json") and f["thread_ts"] == card["ts"] for f in slack.uploaded_files
        ), "snapshot in thread"
        assert zendesk.total_writes() == 0

        await bot.click(ids.APPROVE_REQUEST, request_id, user=REQUESTER, message_ts=card["ts"])
        assert any("four-eyes" in text for text in bot.said_to(REQUESTER))
        await bot.click(ids.APPROVE_REQUEST, request_id, user=OUTSIDER, message_ts=card["ts"])
        assert any("only the approvers" in text for text in bot.said_to(OUTSIDER))
        assert zendesk.total_writes() == 0, "refusals change nothing"

        await bot.click(ids.APPROVE_REQUEST, request_id, user=MANAGER, message_ts=card["ts"])
        assert zendesk.total_writes() == 6  # five triggers off, the SLA policy exempted
        assert not any(o["active"] for o in zendesk.all("trigger"))
        card = slack.message(CHANNEL, card["ts"])
        assert "applied" in card_text(card) and f"<@{MANAGER}>" in card_text(card)
        assert ids.APPROVE_REQUEST not in buttons(card), "the buttons are gone once decided"

        await bot.command("restore")
        restore_card = bot.bot_messages()[-1]
        restore_id = buttons(restore_card)[ids.APPROVE_REQUEST]
        await bot.click(ids.APPROVE_REQUEST, restore_id, user=MANAGER, message_ts=restore_card["ts"])
        assert state(zendesk) == before
        assert "applied" in card_text(slack.message(CHANNEL, restore_card["ts"]))
    slack.assert_no_spec_violations()


async def test_two_approve_clicks_apply_once(database_url, slack):
    zendesk = FakeZendesk(rate_limit=100_000)
    seed(zendesk, 3)
    settings = zendesk_settings(database_url, **SLACK_SETTINGS)
    async with running_bot(settings, slack, httpx.ASGITransport(app=zendesk)) as bot:
        await bot.command("pause")
        [card] = bot.bot_messages()
        request_id = buttons(card)[ids.APPROVE_REQUEST]
        await bot.click(ids.APPROVE_REQUEST, request_id, user=MANAGER, message_ts=card["ts"], wait=False)
        await bot.click(ids.APPROVE_REQUEST, request_id, user=MANAGER, message_ts=card["ts"], wait=False)
        await bot.slack.drain()
        assert zendesk.total_writes() == 4
        assert all(count == 1 for count in zendesk.writes.values())
        assert any("already" in text for text in bot.said_to(MANAGER))


async def test_bad_subcommand_gets_usage_and_changes_nothing(database_url, slack):
    async with running_bot(make_settings(database_url, **SLACK_SETTINGS), slack) as bot:
        response = await bot.command("paws --mode off")
        assert response.status_code == 200
        assert "unknown subcommand `paws`" in response.json()["text"]
        response = await bot.command("pause --mode off")
        assert "invalid choice: 'off'" in response.json()["text"]
        assert bot.bot_messages() == []
        async with bot.deps.db.session() as session:
            assert await store.latest_snapshot(session, target="sandbox") is None


async def test_forged_and_replayed_requests_are_refused(database_url, slack):
    async with running_bot(make_settings(database_url, **SLACK_SETTINGS), slack) as bot:
        body = slash_command_body(text="pause", user_id=REQUESTER, channel_id=CHANNEL)
        forged = await bot.http.post(
            "/slack/events", content=body, headers=signed_headers("wrong-secret", body)
        )
        assert forged.status_code == 401
        old = await bot.http.post(
            "/slack/events",
            content=body,
            headers=signed_headers("test-signing-secret", body, timestamp=int(time.time()) - 301),
        )
        assert old.status_code == 401
        await bot.slack.drain()
        assert bot.bot_messages() == []
        async with bot.deps.db.session() as session:
            assert await store.latest_snapshot(session, target="sandbox") is None


@pytest.mark.slow
async def test_command_is_acknowledged_at_once_while_the_platform_takes_5_seconds(sqlite_url, slack):
    await upgrade(sqlite_url)
    zendesk = FakeZendesk(rate_limit=100_000, slow=5.0)
    seed(zendesk, 2)
    settings = zendesk_settings(sqlite_url, **SLACK_SETTINGS)
    async with running_bot(settings, slack, httpx.ASGITransport(app=zendesk)) as bot:
        started = time.perf_counter()
        response = await bot.command("pause", wait=False)
        acked = time.perf_counter() - started
        assert response.status_code == 200 and "pause" in response.json()["text"]
        assert acked < 1.0, f"acknowledged after {acked:.2f}s"
        assert bot.bot_messages() == [], "the work runs after the ack"
        await bot.slack.drain()
        assert len(bot.bot_messages()) == 1, "and the card arrives once the platform answers"


async def test_stale_plan_is_not_applied_and_can_be_planned_again(database_url, slack):
    zendesk = FakeZendesk(rate_limit=100_000)
    seed(zendesk, 2)
    settings = zendesk_settings(database_url, **SLACK_SETTINGS)
    async with running_bot(settings, slack, httpx.ASGITransport(app=zendesk)) as bot:
        await bot.command("pause")
        [card] = bot.bot_messages()
        first = zendesk.all("trigger")[0]
        zendesk.edit_as_person("trigger", first["id"], title="Edited after the snapshot")
        await bot.click(
            ids.APPROVE_REQUEST, buttons(card)[ids.APPROVE_REQUEST], user=MANAGER, message_ts=card["ts"]
        )
        assert zendesk.total_writes() == 0, "a stale plan is never applied"
        card = slack.message(CHANNEL, card["ts"])
        assert "changed after the snapshot" in card_text(card)
        assert "Edited after the snapshot" not in card_text(card) and "Auto-reply 0 was edited" in card_text(
            card
        )
        await bot.click(
            ids.REPLAN_REQUEST, buttons(card)[ids.REPLAN_REQUEST], user=REQUESTER, message_ts=card["ts"]
        )
        fresh = bot.bot_messages()[-1]
        assert fresh["ts"] != card["ts"] and ids.APPROVE_REQUEST in buttons(fresh)
        await bot.click(
            ids.APPROVE_REQUEST, buttons(fresh)[ids.APPROVE_REQUEST], user=MANAGER, message_ts=fresh["ts"]
        )
        assert zendesk.total_writes() == 3  # two triggers off, the SLA policy exempted


async def test_failed_changes_are_shown_and_retried_from_the_card(database_url, slack):
    zendesk = FakeZendesk(rate_limit=100_000)
    seed(zendesk, 3)
    settings = zendesk_settings(database_url, **SLACK_SETTINGS)
    async with running_bot(settings, slack, httpx.ASGITransport(app=zendesk)) as bot:
        await bot.command("pause --only trigger")
        [card] = bot.bot_messages()
        zendesk.fail_next(1, status=422, methods=("PUT",))  # refused: not worth retrying by itself
        await bot.click(
            ids.APPROVE_REQUEST, buttons(card)[ids.APPROVE_REQUEST], user=MANAGER, message_ts=card["ts"]
        )
        card = slack.message(CHANNEL, card["ts"])
        assert "failed" in card_text(card) and ids.RETRY_REQUEST in buttons(card)
        async with bot.deps.db.session() as session:
            request = await store.get_request(session, request_id=buttons(card)[ids.RETRY_REQUEST])
            statuses = [c.status for c in await store.request_changes(session, request_id=request.id)]
        assert "failed" in statuses
        await bot.click(ids.RETRY_REQUEST, request.id, user=OUTSIDER, message_ts=card["ts"])
        assert any("only the approvers" in text for text in bot.said_to(OUTSIDER))
        await bot.click(ids.RETRY_REQUEST, request.id, user=MANAGER, message_ts=card["ts"])
        card = slack.message(CHANNEL, card["ts"])
        assert "*applied*" in card_text(card) and ids.RETRY_REQUEST not in buttons(card)
        assert not any(o["active"] for o in zendesk.all("trigger"))
        assert all(count == 1 for count in zendesk.writes.values()), "nothing was changed twice"


@pytest.mark.parametrize(
    "policy, requester, needs_card",
    [("none", REQUESTER, False), ("oncall", "U0ONCALL1", False), ("oncall", REQUESTER, True)],
)
async def test_restore_approval_policy(sqlite_url, slack, policy, requester, needs_card):
    await upgrade(sqlite_url)
    settings = make_settings(sqlite_url, **{**SLACK_SETTINGS, "guard_restore_approval": policy})
    async with running_bot(settings, slack) as bot:
        await bot.command("pause")
        [card] = bot.bot_messages()
        await bot.click(
            ids.APPROVE_REQUEST, buttons(card)[ids.APPROVE_REQUEST], user=MANAGER, message_ts=card["ts"]
        )
        await bot.command("restore", user=requester)
        restore_card = slack.message(CHANNEL, bot.bot_messages()[-1]["ts"])
        assert (ids.APPROVE_REQUEST in buttons(restore_card)) == needs_card
        if not needs_card:
            assert "*applied*" in card_text(restore_card)
            assert "Sandbox" in card_text(restore_card)


async def test_approver_groups_are_resolved_through_slack_and_cached(database_url, slack):
    settings = make_settings(database_url, **SLACK_SETTINGS)
    async with running_bot(settings, slack) as bot:
        await bot.command("pause")
        [card] = bot.bot_messages()
        await bot.click(
            ids.REJECT_REQUEST, buttons(card)[ids.REJECT_REQUEST], user=MANAGER, message_ts=card["ts"]
        )
        assert "Rejected by" in card_text(slack.message(CHANNEL, card["ts"]))
        await bot.command("pause")
        card = bot.bot_messages()[-1]
        await bot.click(
            ids.APPROVE_REQUEST, buttons(card)[ids.APPROVE_REQUEST], user=MANAGER, message_ts=card["ts"]
        )
        assert "*applied*" in card_text(slack.message(CHANNEL, card["ts"]))
        assert len(slack.calls("usergroups.users.list")) == 1, "membership is cached between clicks"


@pytest.mark.slow
async def test_a_slow_platform_does_not_hold_up_status(sqlite_url, slack):
    await upgrade(sqlite_url)
    zendesk = FakeZendesk(rate_limit=100_000, slow=2.0)
    seed(zendesk, 2)
    settings = zendesk_settings(sqlite_url, **SLACK_SETTINGS)
    async with running_bot(settings, slack, httpx.ASGITransport(app=zendesk)) as bot:
        await bot.command("pause", wait=False)
        started = time.perf_counter()
        await bot.command("status", wait=False)
        while not bot.said_to(REQUESTER) and time.perf_counter() - started < 5:  # noqa: ASYNC110 (fake in a thread)
            await asyncio.sleep(0.02)
        assert any("zendesk" in text.lower() and "live" in text for text in bot.said_to(REQUESTER))
        assert time.perf_counter() - started < 1.5, "status answered while the pause still reads Zendesk"
        assert bot.bot_messages() == []
        await bot.slack.drain()
        assert len(bot.bot_messages()) == 1
