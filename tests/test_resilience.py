"""Under injected 429s and 5xx answers (about one call in ten), a 300-change pause and its restore
still finish with nothing lost and nothing written twice. Retry-After waits run on a FakeClock, so
the test takes no real seconds waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.http import HttpTarget, build_client
from adapters.zendesk import ZendeskPlatform
from bot import engine
from bot.db import connect
from bot.deps import Deps
from bot.models import ChangeStatus, RequestStatus
from bot.planning import PauseOptions
from tests.conftest import zendesk_settings
from tests.fakes.zendesk import KINDS, FakeClock, FakeZendesk

CHANGES = 300
BASE = "http://zendesk.test"


def active_account(count: int) -> FakeZendesk:
    """A fake whose every automation a pause changes (rules active; SLA policies exempted), answering
    5% of calls with a 500/503 (before acting on them) and 5% with a 429 (Retry-After: 1)."""
    fake = FakeZendesk(rate_limit=None, seed=11)
    for kind, object_id in fake.seed_random(count, seed=11):
        if kind != "sla_policy" and not fake.get(kind, object_id)["active"]:
            fake.edit_as_person(kind, object_id, active=True)
    fake.error_rate, fake.throttle_rate = 0.05, 0.05
    return fake


def stored(fake: FakeZendesk) -> dict[tuple[str, int], dict[str, Any]]:
    return {
        (kind, obj["id"]): {k: v for k, v in obj.items() if k != "updated_at"}
        for kind in KINDS
        for obj in fake.all(kind)
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake() -> FakeZendesk:
    return active_account(CHANGES)


@pytest.fixture
async def deps(database_url: str, fake: FakeZendesk, clock: FakeClock) -> AsyncIterator[Deps]:
    """Deps on a Zendesk platform built by hand, so that its HttpTarget sleeps on the fake clock."""
    client = build_client(
        BASE, auth=("agent@example.com/token", "test-api-token"), transport=httpx.ASGITransport(app=fake)
    )
    http = HttpTarget(client, rate_per_second=10_000, reset_headers=("ratelimit-reset",), sleep=clock.sleep)
    deps = Deps(
        zendesk_settings(database_url, BASE), connect(database_url), ZendeskPlatform(http, web_url=BASE)
    )
    yield deps
    await deps.aclose()


async def test_pause_and_restore_finish_under_injected_429s_and_5xx(
    deps: Deps, fake: FakeZendesk, clock: FakeClock
) -> None:
    before = stored(fake)
    paused = await engine.request_pause(deps, PauseOptions(), actor="UREQUESTER", approved=True)
    assert len(paused.changes) == CHANGES
    result = await engine.apply(deps, paused.request.id, actor="UREQUESTER")

    assert result.request.status == RequestStatus.APPLIED
    assert result.counts == {ChangeStatus.DONE: CHANGES}, "nothing lost"
    planned = {(c.kind, int(c.automation_id)) for c in result.changes}
    assert fake.writes == dict.fromkeys(planned, 1), (
        "a refused call is retried, an applied one never repeated"
    )
    stats = deps.platform.http.stats  # type: ignore[attr-defined]
    assert stats.rate_limited > 10 and fake.errors_sent > 10, "faults were injected"
    assert stats.failed == 0
    assert clock.slept.count(1.0) >= stats.rate_limited, "each 429 waited its Retry-After (on the fake clock)"

    restore = await engine.request_restore(deps, actor="UREQUESTER", approved=True)
    restored = await engine.apply(deps, restore.request.id, actor="UREQUESTER")
    assert restored.request.status == RequestStatus.APPLIED
    assert restored.counts == {ChangeStatus.DONE: CHANGES}
    assert restored.differences == []
    assert fake.writes == dict.fromkeys(planned, 2)
    assert stored(fake) == before
