"""Block Kit builders: valid for slack_sdk's models and within Slack's limits at 500 automations."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.models.blocks import Block

from bot import ids
from bot.blocks.approval import CardContext, applying_card, approval_card, closed_card, outcome_card
from bot.blocks.common import mention, slack_date
from bot.models import Change, ChangeRequest

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
WHERE = CardContext(platform="Zendesk", notes=("Tickets: use skip_notifications.",))


def request(status: str = "pending", kind: str = "pause") -> ChangeRequest:
    return ChangeRequest(
        id="cr_0123456789",
        target="zendesk",
        kind=kind,
        status=status,
        mode="disable",
        snapshot_id="snap_0123456789",
        requester="U0REQUESTER",
        created_at=NOW,
        expires_at=NOW + timedelta(hours=24),
        decided_by="U0MANAGER1",
        decided_at=NOW,
        planned_end_at=NOW + timedelta(hours=8),
        options={},
    )


def changes(n: int, status: str = "planned") -> list[Change]:
    long_name = "Notify requester <with> & a very long name " * 3
    return [
        Change(
            request_id="cr_0123456789",
            position=i,
            kind="trigger",
            automation_id=str(i),
            name=f"{long_name}{i}",
            action="disable",
            before={},
            after={},
            status=status,
            url=f"https://acme.zendesk.com/admin/{i}",
            note="HTTP 500: the platform failed" if status == "failed" else None,
        )
        for i in range(n)
    ]


def validate(blocks: list[dict]) -> None:
    """What Slack would refuse: more than 50 blocks, or any block slack_sdk's models reject."""
    assert len(blocks) <= 50
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        assert parsed.to_dict() is not None  # to_dict() runs every model validator
    assert len(json.dumps(blocks)) < 12_000, (
        "Slack refuses very large messages as a whole (msg_blocks_too_long)"
    )


@pytest.mark.parametrize("n", [0, 1, 40, 41, 500])
def test_approval_card_is_valid_and_collapses_long_lists(n):
    text, blocks = approval_card(request(), changes(n), WHERE)
    validate(blocks)
    assert text
    rendered = json.dumps(blocks)
    listed = rendered.count("https://acme.zendesk.com/admin/")
    hidden = re.search(r"and (\d+) more: the full list is in the thread", rendered)
    assert listed + (int(hidden.group(1)) if hidden else 0) == n, "every change is listed or counted"
    assert listed <= 40
    assert "&lt;with&gt; &amp;" in rendered if n else True
    actions = [b for b in blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == [ids.APPROVE_REQUEST, ids.REJECT_REQUEST]
    assert all(e["value"] == "cr_0123456789" and "confirm" in e for e in actions[0]["elements"])


def test_outcome_card_with_500_failures_keeps_the_retry_button():
    _, blocks = outcome_card(request("partially_applied"), changes(500, "failed"), WHERE, ["x differs"] * 30)
    validate(blocks)
    assert blocks[-1]["type"] == "actions"
    assert blocks[-1]["elements"][0]["action_id"] == ids.RETRY_REQUEST


@pytest.mark.parametrize("status", ["rejected", "expired", "stale"])
def test_closed_cards_have_no_approve_button(status):
    _, blocks = closed_card(request(status), WHERE)
    validate(blocks)
    assert ids.APPROVE_REQUEST not in json.dumps(blocks)
    assert (ids.REPLAN_REQUEST in json.dumps(blocks)) == (status == "stale")


def test_applying_card_shows_progress_without_buttons():
    _, blocks = applying_card(request("applying"), 250, 500, WHERE)
    validate(blocks)
    assert "250/500" in json.dumps(blocks) and "actions" not in [b["type"] for b in blocks]


def test_sandbox_cards_say_so():
    _, blocks = approval_card(request(), changes(3), CardContext(platform="Sandbox", sandbox=True))
    assert "Sandbox" in json.dumps(blocks) and "No real automations" in json.dumps(blocks)


def test_dates_render_in_each_readers_zone_and_mentions():
    assert slack_date(NOW) == "<!date^1796385600^{date_short_pretty} at {time}|2026-12-04 12:00 UTC>"
    assert mention("U0ABC") == "<@U0ABC>" and mention("S0TEAM") == "<!subteam^S0TEAM>"
    assert mention("cli:alice") == "`cli:alice`"
