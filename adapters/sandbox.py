"""The sandbox: an embedded sample helpdesk kept in the bot's own database (GUARD_PLATFORM=sandbox).

It behaves like a small Zendesk account (triggers, automations, an SLA policy; full-replace
writes) so the whole product can be tried with no helpdesk credentials. Nothing here reaches a
real customer: every surface says "sandbox".
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Field, SQLModel, select

from adapters.base import Action, Automation, AutomationGone, KindInfo
from adapters.zendesk import KINDS as ZENDESK_KINDS
from adapters.zendesk import edit_rule


class SandboxAutomation(SQLModel, table=True):
    """One automation of the sample helpdesk."""

    __tablename__ = "sandbox_automations"

    kind: str = Field(primary_key=True, max_length=50)
    automation_id: str = Field(primary_key=True, max_length=100)
    definition: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    updated_at: str = Field(max_length=40)
    writes: int = 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _tags(*names: str) -> dict[str, Any]:
    return {"field": "current_tags", "operator": "includes", "value": " ".join(names)}


def _rule(
    title: str, active: bool, conditions: list[dict[str, Any]], actions: list[dict[str, Any]], **extra: Any
):
    return {
        "title": title,
        "active": active,
        "conditions": {"all": conditions, "any": []},
        "actions": actions,
        **extra,
    }


CREATED = {"field": "update_type", "operator": "is", "value": "Create"}
CHANGED = {"field": "update_type", "operator": "is", "value": "Change"}
EMAIL_REQUESTER = {
    "field": "notification_user",
    "value": ["requester_id", "Request received", "We got it: {{ticket.id}}"],
}

SEED: list[tuple[str, dict[str, Any]]] = [
    (
        "trigger",
        _rule(
            "Notify requester of new ticket",
            True,
            [CREATED, {"field": "via_id", "operator": "is", "value": 4}],
            [EMAIL_REQUESTER],
        ),
    ),
    (
        "trigger",
        _rule(
            "Notify requester of solved ticket + CSAT",
            True,
            [CHANGED, {"field": "status", "operator": "value", "value": "solved"}],
            [{"field": "notification_user", "value": ["requester_id", "Solved", "How did we do?"]}],
        ),
    ),
    (
        "trigger",
        _rule(
            "Reopen on customer reply",
            True,
            [CHANGED, {"field": "role", "operator": "is", "value": "end_user"}],
            [{"field": "status", "value": "open"}],
        ),
    ),
    (
        "trigger",
        _rule(
            "Route billing to Finance",
            True,
            [CREATED, _tags("billing")],
            [{"field": "group_id", "value": "360001"}],
        ),
    ),
    (
        "trigger",
        _rule(
            "Notify assignee of assignment",
            True,
            [{"field": "assignee_id", "operator": "changed"}],
            [{"field": "notification_user", "value": ["assignee_id", "Assigned", "{{ticket.url}}"]}],
        ),
    ),
    (
        "trigger",
        _rule(
            "Auto-reply outside business hours",
            False,
            [CREATED, {"field": "within_schedule", "operator": "is", "value": False}],
            [EMAIL_REQUESTER],
        ),
    ),
    (
        "trigger",
        _rule(
            "Slack alert for VIP",
            True,
            [CREATED, _tags("vip")],
            [{"field": "notification_target", "value": ["01H", "VIP ticket {{ticket.id}}"]}],
        ),
    ),
    (
        "automation",
        _rule(
            "Close solved tickets after 4 days",
            True,
            [
                {"field": "status", "operator": "is", "value": "solved"},
                {"field": "SOLVED", "operator": "greater_than", "value": "96"},
            ],
            [{"field": "status", "value": "closed"}],
        ),
    ),
    (
        "automation",
        _rule(
            "Nudge pending tickets after 2 days",
            True,
            [
                {"field": "status", "operator": "is", "value": "pending"},
                {"field": "PENDING", "operator": "greater_than", "value": "48"},
            ],
            [EMAIL_REQUESTER],
        ),
    ),
    (
        "automation",
        _rule(
            "Escalate unassigned after 8h",
            False,
            [
                {"field": "assignee_id", "operator": "is", "value": ""},
                {"field": "NEW", "operator": "greater_than", "value": "8"},
            ],
            [{"field": "priority", "value": "high"}],
        ),
    ),
    (
        "sla_policy",
        {
            "title": "Standard SLA",
            "description": "First reply in 8 business hours",
            "filter": {"all": [{"field": "type", "operator": "is_not", "value": "task"}], "any": []},
            "policy_metrics": [
                {"priority": "normal", "metric": "first_reply_time", "target": 480, "business_hours": True}
            ],
        },
    ),
]


class SandboxPlatform:
    name = "sandbox"
    display_name = "Sandbox (sample helpdesk, no real customers)"
    kinds: Mapping[str, KindInfo] = ZENDESK_KINDS

    def __init__(self, sessions: async_sessionmaker[Any]):
        self._sessions = sessions

    async def seed(self) -> int:
        """Fill an empty sandbox with the sample automations; returns how many were added."""
        async with self._sessions() as session:
            if (await session.execute(select(sa.func.count()).select_from(SandboxAutomation))).scalar():
                return 0
            counters: dict[str, int] = {}
            for kind, definition in SEED:
                counters[kind] = counters.get(kind, 0) + 1
                automation_id = str(360_000_000 + 1000 * list(self.kinds).index(kind) + counters[kind])
                session.add(
                    SandboxAutomation(
                        kind=kind,
                        automation_id=automation_id,
                        definition=copy.deepcopy(definition),
                        updated_at=_now(),
                    )
                )
            await session.commit()
            return len(SEED)

    async def list_automations(self) -> list[Automation]:
        await self.seed()
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(SandboxAutomation).order_by(
                        SandboxAutomation.kind, SandboxAutomation.automation_id
                    )
                )
            ).scalars()
            return [self._automation(row) for row in rows]

    async def get_automation(self, kind: str, automation_id: str) -> Automation:
        async with self._sessions() as session:
            row = await session.get(SandboxAutomation, (kind, automation_id))
            if row is None:
                raise AutomationGone(f"sandbox {kind} {automation_id} does not exist", status=404)
            return self._automation(row)

    def edit(self, automation: Automation, action: Action, tag: str) -> Automation:
        return edit_rule(automation, action, tag)

    async def write(self, desired: Automation) -> Automation:
        async with self._sessions() as session:
            row = await session.get(SandboxAutomation, (desired.kind, desired.id))
            if row is None:
                raise AutomationGone(f"sandbox {desired.kind} {desired.id} does not exist", status=404)
            row.definition = copy.deepcopy(desired.definition)
            row.updated_at = _now()
            row.writes += 1
            session.add(row)
            await session.commit()
            return self._automation(row)

    async def aclose(self) -> None:
        return None

    def _automation(self, row: SandboxAutomation) -> Automation:
        definition = row.definition
        enabled = definition.get("active") if row.kind != "sla_policy" else None
        return Automation(
            kind=row.kind,
            id=row.automation_id,
            name=definition["title"],
            enabled=enabled,
            definition=copy.deepcopy(definition),
            updated_at=row.updated_at,
            url=f"sandbox://{row.kind}/{row.automation_id}",
        )
