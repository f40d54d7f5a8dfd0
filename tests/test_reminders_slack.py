"""Reminders in Slack: delivered to the fake Slack over a socket, answered through the real Bolt app
with signed interactivity payloads. The clock is injected; nothing waits for real time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import col, select

from bot import engine, ids, reminders
from bot.db import upgrade
from bot.deps import Deps
from bot.models import ChangeRequest, Guard, Reminder
from bot.planning import PauseOptions
from bot.slack import create_app
from bot.slack.context import SlackContext
from bot.slack.reminders import METADATA_EVENT, deliverer
from tests.conftest import make_deps, make_settings
from tests.fakes.slack import FakeSlack, serve_in_thread
from tests.slack_signing import block_actions_body, signed_headers, slash_command_body

SECRET = "test-signing-secret"  # make_settings' signing secret
CHANNEL = "C0MIGRATION"
REQUESTER = "UREQUESTER"
MANAGER = "UMANAGER1"
GROUPIE = "UMANAGER2"  # an approver through the SAPPROVERS user group
ONCALL = "UONCALL1"
STRANGER = "USTRANGER"
START = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Bot:
    deps: Deps
    app: AsyncApp
    slack: SlackContext
    fake: FakeSlack
    clock: Clock

    async def tick(self, worker: str = "w1") -> int:
        return await reminders.tick(self.deps, deliverer(self.slack), worker_id=worker)

    async def click(
        self, action_id: str, value: str | None, *, user: str, message: dict[str, Any], **extra: Any
    ) -> None:
        url = self.fake.response_url(message_ts=message["ts"], user_id=user)
        body = block_actions_body(action_id, value, user_id=user, message=message, response_url=url, **extra)
        await self.dispatch(body)

    async def command(self, text: str, *, user: str) -> None:
        body = slash_command_body(text=text, user_id=user, response_url=self.fake.response_url(user_id=user))
        await self.dispatch(body)

    async def dispatch(self, body: str) -> None:
        response = await self.app.async_dispatch(
            AsyncBoltRequest(body=body, headers=signed_headers(SECRET, body))
        )
        assert response.status == 200, response.body
        await self.slack.drain()

    def posts(self) -> list[dict[str, Any]]:
        """Top-level messages in the migration channel."""
        return [m for m in self.fake.messages(CHANNEL) if m["thread_ts"] in (None, m["ts"])]

    def reminder_posts(self) -> list[dict[str, Any]]:
        return [m for m in self.posts() if (m.get("metadata") or {}).get("event_type") == METADATA_EVENT]

    async def rows(self, **where: Any) -> list[Reminder]:
        async with self.deps.db.session() as session:
            query = select(Reminder).order_by(col(Reminder.due_at), col(Reminder.id))
            for name, value in where.items():
                query = query.where(getattr(Reminder, name) == value)
            return list(await session.exec(query))

    async def guard(self) -> Guard:
        async with self.deps.db.session() as session:
            guard = await session.get(Guard, self.deps.target)
        assert guard is not None
        return guard


@pytest.fixture(scope="module")
def served() -> Iterator[FakeSlack]:
    fake = FakeSlack(users={MANAGER: "manager", GROUPIE: "manager2", ONCALL: "oncall"}, usergroups={})
    with serve_in_thread(fake):
        yield fake


@pytest.fixture
def fake(served: FakeSlack) -> FakeSlack:
    served.reset()
    served.set_usergroup("SAPPROVERS", [GROUPIE])
    return served


@pytest.fixture
async def bot(tmp_path: Path, fake: FakeSlack) -> AsyncIterator[Bot]:
    url = f"sqlite:///{tmp_path / 'guard.db'}"
    await upgrade(url)
    settings = make_settings(url, guard_remind_every="1h", guard_escalate_after=2, guard_approval_ttl="4h")
    deps = await make_deps(settings)
    clock = Clock()
    deps.clock = clock
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    app, slack = create_app(deps, client=client)
    yield Bot(deps, app, slack, fake, clock)
    await slack.drain()
    await deps.aclose()
    fake.assert_no_spec_violations()


async def paused(bot: Bot) -> ChangeRequest:
    outcome = await engine.request_pause(bot.deps, PauseOptions(), actor=REQUESTER)
    await engine.decide(bot.deps, outcome.request.id, actor=MANAGER, approve=True)
    return (await engine.apply(bot.deps, outcome.request.id, actor=MANAGER)).request


def action_ids(message: dict[str, Any]) -> list[str]:
    return [
        element["action_id"]
        for block in message.get("blocks") or []
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def texts(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks") or []) + message["text"]


# ---- delivery --------------------------------------------------------------------------------


async def test_a_due_reminder_is_posted_once_with_mentions_buttons_and_its_id(bot):
    pause = await paused(bot)
    bot.clock.advance(minutes=59)
    assert await bot.tick() == 0
    bot.clock.advance(minutes=1)
    assert await bot.tick() == 1
    assert await bot.tick() == 0

    [message] = bot.reminder_posts()
    [row] = await bot.rows(kind="restore", status="delivered")
    assert message["ts"] == row.slack_ts and row.slack_channel == CHANNEL
    assert message["metadata"]["event_payload"]["reminder_id"] == row.id
    assert message["text"].startswith(f"<@{ONCALL}>")
    assert MANAGER not in message["text"]
    assert action_ids(message) == [
        ids.RESTORE_NOW,
        ids.SNOOZE_REMINDER,
        ids.ACK_REMINDER,
        ids.SNOOZE_REMINDER,
    ]
    body = texts(message)
    assert "paused for *1h*" in body and "<!date^" in body, "times use Slack's date formatting"
    assert f"<@{REQUESTER}>" in body and f"<@{MANAGER}>" in body, "paused by, approved by"
    assert "*8* switched off" in body and "*1* skipping imported records" in body
    assert pause.id in body and "No import is running" in body


async def test_escalation_mentions_approver_users_and_groups(bot):
    await paused(bot)
    for _ in range(3):
        bot.clock.advance(hours=1)
        assert await bot.tick() == 1
    first, second, third = (m["text"] for m in bot.reminder_posts())
    for text in (first, second):
        assert f"<@{ONCALL}>" in text and f"<@{MANAGER}>" not in text and "subteam" not in text
    assert f"<@{ONCALL}>" in third and f"<@{MANAGER}>" in third and "<!subteam^SAPPROVERS>" in third


async def test_a_failed_post_is_retried_and_posted_once(bot):
    await paused(bot)
    bot.clock.advance(hours=1)
    bot.fake.fail_next("chat.postMessage", "internal_error")
    assert await bot.tick() == 0
    assert bot.reminder_posts() == []
    bot.clock.advance(minutes=1)
    assert await bot.tick() == 1
    assert len(bot.reminder_posts()) == 1


async def test_a_crash_after_claiming_posts_once_after_the_lease(bot):
    await paused(bot)
    bot.clock.advance(hours=1)
    assert len(await reminders.claim_due(bot.deps, worker_id="A")) == 1  # A dies before posting
    assert await bot.tick("B") == 0
    bot.clock.advance(seconds=reminders.LEASE.total_seconds())
    assert await bot.tick("B") == 1
    assert await bot.tick("B") == 0
    assert len(bot.reminder_posts()) == 1
    assert bot.fake.call_count("chat.postMessage") == 1


# ---- buttons ---------------------------------------------------------------------------------


async def test_acknowledge_by_oncall_resets_escalation_and_answers_the_message(bot):
    await paused(bot)
    for _ in range(2):
        bot.clock.advance(hours=1)
        await bot.tick()
    assert (await bot.guard()).unanswered_reminders == 2
    message = bot.reminder_posts()[-1]
    await bot.click(
        ids.ACK_REMINDER,
        str(message["metadata"]["event_payload"]["reminder_id"]),
        user=ONCALL,
        message=message,
    )

    assert (await bot.guard()).unanswered_reminders == 0
    updated = bot.fake.message(CHANNEL, message["ts"])
    assert action_ids(updated) == [], "answered: the buttons are gone"
    assert "still importing" in texts(updated) and f"<@{ONCALL}>" in texts(updated)
    bot.clock.advance(hours=1)
    await bot.tick()
    assert f"<@{MANAGER}>" not in bot.reminder_posts()[-1]["text"], "escalation started over"


async def test_snooze_button_by_an_approver_through_a_user_group(bot):
    await paused(bot)
    bot.clock.advance(hours=1)
    await bot.tick()
    message = bot.reminder_posts()[0]
    button = next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"])
    assert button["action_id"] == ids.RESTORE_NOW
    snooze = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]][1]
    await bot.click(ids.SNOOZE_REMINDER, snooze["value"], user=GROUPIE, message=message)

    [next_one] = await bot.rows(status="scheduled")
    assert next_one.due_at == bot.clock.now + timedelta(hours=2)
    assert ":zzz: Snoozed by" in texts(bot.fake.message(CHANNEL, message["ts"]))
    bot.clock.advance(hours=1, minutes=59)
    assert await bot.tick() == 0
    bot.clock.advance(minutes=1)
    assert await bot.tick() == 1


async def test_snooze_menu_picks_another_time(bot):
    await paused(bot)
    bot.clock.advance(hours=1)
    await bot.tick()
    message = bot.reminder_posts()[0]
    menu = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]][-1]
    assert menu["type"] == "static_select" and menu["action_id"] == ids.SNOOZE_REMINDER
    choice = next(o for o in menu["options"] if o["value"].endswith(":8h"))
    action = {
        "type": "static_select",
        "action_id": ids.SNOOZE_REMINDER,
        "block_id": "reminder_snooze",
        "selected_option": choice,
        "action_ts": "1800000000.000001",
    }
    await bot.click(
        ids.SNOOZE_REMINDER, None, user=ONCALL, message=message, extra_payload={"actions": [action]}
    )
    [next_one] = await bot.rows(status="scheduled")
    assert next_one.due_at == bot.clock.now + timedelta(hours=8)


async def test_snooze_and_acknowledge_by_anyone_else_are_refused_saying_why(bot):
    await paused(bot)
    bot.clock.advance(hours=1)
    await bot.tick()
    message = bot.reminder_posts()[0]
    reminder_id = str(message["metadata"]["event_payload"]["reminder_id"])
    [before] = await bot.rows(status="scheduled")

    await bot.click(ids.SNOOZE_REMINDER, f"{reminder_id}:2h", user=STRANGER, message=message)
    await bot.click(ids.ACK_REMINDER, reminder_id, user=REQUESTER, message=message)

    refusals = [p for p in bot.fake.response_url_posts if p["user_id"] in (STRANGER, REQUESTER)]
    assert len(refusals) == 2
    for post in refusals:
        assert post["response_type"] == "ephemeral" and "only on-call" in post["text"]
    [after] = await bot.rows(status="scheduled")
    assert after.due_at == before.due_at
    assert (await bot.guard()).unanswered_reminders == 1
    assert action_ids(bot.fake.message(CHANNEL, message["ts"])), "the buttons stay for those allowed"


async def test_restore_now_opens_a_restore_request_and_restoring_cancels_reminders(bot):
    await paused(bot)
    bot.clock.advance(hours=1)
    await bot.tick()
    message = bot.reminder_posts()[0]
    reminder_id = str(message["metadata"]["event_payload"]["reminder_id"])
    await bot.click(ids.RESTORE_NOW, reminder_id, user=ONCALL, message=message)

    async with bot.deps.db.session() as session:
        [request] = await session.exec(select(ChangeRequest).where(ChangeRequest.kind == "restore"))
    assert (request.status, request.requester) == ("pending", ONCALL)
    card = bot.fake.message(CHANNEL, request.slack_ts)
    assert ids.APPROVE_REQUEST in action_ids(card)
    assert "asked for a restore" in texts(bot.fake.message(CHANNEL, message["ts"]))
    assert any("for approval" in (p["text"] or "") for p in bot.fake.response_url_posts)

    await bot.click(ids.APPROVE_REQUEST, request.id, user=MANAGER, message=card)
    assert (await bot.guard()).state == "live"
    assert await bot.rows(status="scheduled") == []
    bot.clock.advance(days=2)
    assert await bot.tick() == 0
    assert len(bot.reminder_posts()) == 1


async def test_restore_now_while_a_restore_is_open_says_so(bot):
    await paused(bot)
    bot.clock.advance(hours=1)
    await bot.tick()
    message = bot.reminder_posts()[0]
    reminder_id = str(message["metadata"]["event_payload"]["reminder_id"])
    await bot.click(ids.RESTORE_NOW, reminder_id, user=ONCALL, message=message)
    await bot.click(ids.RESTORE_NOW, reminder_id, user=MANAGER, message=message)
    last = bot.fake.response_url_posts[-1]
    assert last["user_id"] == MANAGER and "already pending" in last["text"]


# ---- approvals -------------------------------------------------------------------------------


async def test_pending_pause_nudges_in_the_thread_then_expires_and_its_card_loses_its_buttons(bot):
    await bot.command("pause", user=REQUESTER)
    [card] = [m for m in bot.posts() if ids.APPROVE_REQUEST in action_ids(m)]

    bot.clock.advance(minutes=30)
    assert await bot.tick() == 1
    [nudge] = [m for m in bot.fake.replies(CHANNEL, card["ts"]) if m.get("metadata")]
    assert f"<@{MANAGER}>" in nudge["text"] and "<!subteam^SAPPROVERS>" in nudge["text"]

    bot.clock.advance(hours=3, minutes=30)
    assert await bot.tick() == 1
    closed = bot.fake.message(CHANNEL, card["ts"])
    assert action_ids(closed) == [] and "Expired" in texts(closed)
    async with bot.deps.db.session() as session:
        [request] = await session.exec(select(ChangeRequest))
        [expiry] = await session.exec(select(Reminder).where(Reminder.kind == "approval_expiry"))
    assert request.status == "expired"
    assert (expiry.status, expiry.slack_ts) == ("delivered", card["ts"])

    await bot.click(ids.APPROVE_REQUEST, request.id, user=MANAGER, message=card)  # a late click
    assert "expired" in bot.fake.response_url_posts[-1]["text"]


async def test_status_shows_the_next_reminder(bot):
    await paused(bot)
    [scheduled] = await bot.rows(status="scheduled")
    await bot.command("status", user=ONCALL)
    answer = json.dumps(bot.fake.response_url_posts[-1]["payload"])
    assert "Next reminder (restore)" in answer
    assert f"<!date^{int(scheduled.due_at.timestamp())}^" in answer
