"""Property: pause then restore leaves every automation exactly as it was (Zendesk, both modes).

Random accounts of triggers, automations and SLA policies (active and inactive, random conditions,
some already carrying the exemption condition or near misses of it), random `--only` and `--keep`:
the pause changes exactly the automations an independent oracle says it should, into their paused
form, writing each once; the restore writes each once more and leaves the fake's stored objects
equal to what they were before the pause (ignoring `updated_at`).

Hypothesis runs many examples inside one test function, so function-scoped fixtures are shared by
the examples: each example empties the database's tables and builds a fresh fake and Deps.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

from adapters.base import exemption_condition
from bot import engine
from bot.db import async_url
from bot.models import RequestStatus
from bot.planning import PauseOptions
from tests.conftest import make_deps, zendesk_settings
from tests.fakes.zendesk import FakeZendesk

TAG = "migration_import"
EXEMPTION = exemption_condition(TAG)
NEAR_MISSES = [
    {"field": "current_tags", "operator": "includes", "value": TAG},
    {"field": "current_tags", "operator": "not_includes", "value": f"{TAG}_old"},
    {"field": "current_tags", "operator": "not_includes", "value": f"vip {TAG}"},
]
KINDS = ("trigger", "automation", "sla_policy")
TITLES = ("Auto-reply", "CSAT survey", "Escalate", "Notify team", "Close solved", "VIP routing")
FIELDS = ("status", "priority", "via_id", "group_id", "current_tags", "update_type", "role", "SOLVED")
OPERATORS = ("is", "is_not", "less_than", "greater_than", "includes", "not_includes", "changed", "value")
METRICS = ("first_reply_time", "next_reply_time", "periodic_update_time")
PRIORITIES = ("low", "normal", "high", "urgent")

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**31), max_value=2**31),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
)
plain_condition = st.fixed_dictionaries(
    {"field": st.sampled_from(FIELDS), "operator": st.sampled_from(OPERATORS), "value": values}
)
condition = st.one_of(
    plain_condition, st.just(EXEMPTION), st.sampled_from(NEAR_MISSES)
)  # pre-existing exemptions, sometimes twice, in `all` or `any`
conditions = st.fixed_dictionaries(
    {"all": st.lists(condition, max_size=4), "any": st.lists(condition, max_size=3)}
)
actions = st.lists(
    st.fixed_dictionaries(
        {
            "field": st.sampled_from(("status", "priority", "notification_user", "current_tags")),
            "value": st.one_of(values, st.lists(st.text(max_size=8), min_size=1, max_size=3)),
        }
    ),
    min_size=1,  # Zendesk refuses a rule without actions
    max_size=3,
)
rule = st.fixed_dictionaries(
    {
        "title": st.sampled_from(TITLES),
        "active": st.booleans(),
        "description": st.one_of(st.none(), st.text(max_size=20)),
        "conditions": conditions,
        "actions": actions,
    }
)
sla = st.fixed_dictionaries(
    {
        "title": st.sampled_from(TITLES),
        "description": st.text(max_size=20),
        "filter": conditions,
        "policy_metrics": st.lists(
            st.fixed_dictionaries(
                {
                    "priority": st.sampled_from(PRIORITIES),
                    "metric": st.sampled_from(METRICS),
                    "target": st.integers(min_value=1, max_value=10_000),
                    "business_hours": st.booleans(),
                }
            ),
            max_size=3,
        ),
    }
)
automation = st.one_of(
    st.tuples(st.just("trigger"), rule),
    st.tuples(st.just("automation"), rule),
    st.tuples(st.just("sla_policy"), sla),
)
accounts = st.lists(automation, min_size=1, max_size=12)


def stored(fake: FakeZendesk) -> dict[tuple[str, int], dict[str, Any]]:
    """The fake's objects as it stores them, minus the timestamp every write bumps."""
    return {
        (kind, obj["id"]): {k: v for k, v in obj.items() if k != "updated_at"}
        for kind in KINDS
        for obj in fake.all(kind)
    }


def expected_pause(obj: dict[str, Any], kind: str, options: PauseOptions) -> dict[str, Any] | None:
    """The oracle, written from the product's rules, not from its code: what a pause makes of `obj`
    (None: left alone)."""
    if options.only and kind not in options.only:
        return None
    if {obj["title"].casefold(), str(obj["id"])} & {k.casefold() for k in options.keep}:
        return None
    if kind != "sla_policy" and not obj["active"]:
        return None  # already off: nothing fires
    if kind != "sla_policy" and options.mode == "disable":
        return {**obj, "active": False}
    key = "filter" if kind == "sla_policy" else "conditions"
    if EXEMPTION in obj[key]["all"]:
        return None  # already exempt
    return {**obj, key: {**obj[key], "all": [*obj[key]["all"], EXEMPTION]}}


async def empty_tables(url: str) -> None:
    db = create_async_engine(async_url(url))
    async with db.begin() as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            await connection.execute(sa.delete(table))
    await db.dispose()


async def pause_then_restore(url: str, account: list, data: st.DataObject, mode: str) -> None:
    fake = FakeZendesk(rate_limit=None)
    for kind, fields in account:
        fake.seed(kind, **fields)
    before = stored(fake)
    names = sorted({obj["title"] for obj in before.values()} | {str(oid) for _, oid in before})
    options = PauseOptions(
        mode=mode,  # type: ignore[arg-type]
        only=frozenset(data.draw(st.sets(st.sampled_from(KINDS)), label="only")),
        keep=frozenset(data.draw(st.sets(st.sampled_from(names), max_size=3), label="keep") if names else ()),
        tag=TAG,
    )
    await empty_tables(url)
    deps = await make_deps(zendesk_settings(url), httpx.ASGITransport(app=fake))
    try:
        paused = await engine.request_pause(deps, options, actor="UREQUESTER", approved=True)
        applied = await engine.apply(deps, paused.request.id, actor="UREQUESTER")
        assert applied.request.status == RequestStatus.APPLIED, applied.counts
        oracle = {
            key: after
            for key, obj in before.items()
            if (after := expected_pause({**obj, "id": key[1]}, key[0], options)) is not None
        }
        event(f"{mode}: {'some' if oracle else 'no'} changes, {'some' if options.keep else 'no'} keep")
        assert {(c.kind, int(c.automation_id)) for c in applied.changes} == set(oracle)
        during = stored(fake)
        assert during == {**before, **oracle}, "planned automations paused, every other one untouched"
        assert fake.writes == {key: 1 for key in oracle}

        restore = await engine.request_restore(deps, actor="UREQUESTER", approved=True)
        result = await engine.apply(deps, restore.request.id, actor="UREQUESTER")
        assert result.request.status == RequestStatus.APPLIED, result.counts
        assert result.differences == []
        assert stored(fake) == before
        assert fake.writes == {key: 2 for key in oracle}
    finally:
        await deps.aclose()


@pytest.mark.parametrize("mode", ["disable", "exempt"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(account=accounts, data=st.data())
async def test_pause_then_restore_is_exact(database_url: str, mode: str, account: list, data) -> None:
    await pause_then_restore(database_url, account, data, mode)
