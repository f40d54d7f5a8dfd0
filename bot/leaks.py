"""Leak watch: evidence that a workflow acted on an imported record while the import runs.

For each progress batch, a sample of the imported record ids (Intercom conversation ids) is read
back from the platform; parts a workflow left there (`operator_workflow_event`,
`conversation_attribute_updated_by_workflow`) become `LeakAlert` rows. The table's unique key
(run, record, part) makes every part alerted once, however often a record is sampled again, and
by however many replicas. Platforms without detection (no `workflow_events`) are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from adapters.base import PlatformError
from adapters.intercom import WorkflowEvent
from bot.deps import Deps
from bot.errors import NotFound
from bot.models import ImportRun, LeakAlert

log = logging.getLogger(__name__)

SAMPLE = 5  # records read back per batch
CONCURRENCY = 4  # reads in flight per batch (the adapter's HttpTarget bounds the total)


@runtime_checkable
class LeakWatch(Protocol):
    """What a platform offers for leak detection (IntercomPlatform)."""

    async def workflow_events(self, conversation_id: str) -> list[WorkflowEvent]: ...

    async def conversation_link(self, conversation_id: str) -> str: ...

    async def workflow_link(self, workflow_id: str) -> str: ...


def can_watch(deps: Deps) -> bool:
    return isinstance(deps.platform, LeakWatch)


def pick(record_ids: Sequence[str], sample: int, rng: random.Random | None = None) -> list[str]:
    """Up to `sample` distinct ids, chosen at random so that no position in a batch is favoured."""
    distinct = list(dict.fromkeys(str(record_id) for record_id in record_ids if str(record_id).strip()))
    if len(distinct) <= sample:
        return distinct
    return (rng or random).sample(distinct, sample)


async def check_batch(
    deps: Deps,
    run_id: str,
    record_ids: Sequence[str],
    *,
    sample: int = SAMPLE,
    rng: random.Random | None = None,
) -> list[LeakAlert]:
    """Read a sample of the batch's records back and store what workflows did to them; returns
    only alerts not seen before. A record that cannot be read is logged and skipped: the watch
    never blocks an import's progress report."""
    platform = deps.platform
    if not isinstance(platform, LeakWatch) or sample <= 0:
        return []
    async with deps.db.session() as session:
        if await session.get(ImportRun, run_id) is None:
            raise NotFound(f"no import run {run_id}")
    chosen = pick(record_ids, sample, rng)
    slots = asyncio.Semaphore(CONCURRENCY)

    async def read(record_id: str) -> list[WorkflowEvent]:
        async with slots:
            try:
                return await platform.workflow_events(record_id)
            except PlatformError as error:
                log.warning("leak watch: could not read %s of run %s: %s", record_id, run_id, error)
                return []

    found = [event for events in await asyncio.gather(*(read(r) for r in chosen)) for event in events]
    return await store_new(deps, run_id, found)


async def store_new(deps: Deps, run_id: str, events: Sequence[WorkflowEvent]) -> list[LeakAlert]:
    """Insert each (run, record, part) once; return the rows this call inserted."""
    if not events:
        return []
    now = deps.clock()
    rows = [
        {
            "run_id": run_id,
            "record_id": event.conversation_id,
            "part_id": event.part_id,
            "workflow": event.workflow_name,
            "part_type": event.part_type,
            "seen_at": now,
        }
        for event in {(e.conversation_id, e.part_id): e for e in events}.values()
    ]
    insert = sqlite.insert if deps.db.is_sqlite else postgresql.insert
    statement = (
        insert(LeakAlert)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["run_id", "record_id", "part_id"])
        .returning(col(LeakAlert.id))
    )
    async with deps.db.session() as session:
        inserted = [row[0] for row in await session.execute(statement)]
        await session.commit()
        if not inserted:
            return []
        alerts = await session.exec(select(LeakAlert).where(col(LeakAlert.id).in_(inserted)))
        return sorted(alerts, key=lambda alert: alert.id or 0)


async def alerts_of(deps: Deps, run_id: str) -> list[LeakAlert]:
    async with deps.db.session() as session:
        rows = await session.exec(
            select(LeakAlert).where(LeakAlert.run_id == run_id).order_by(col(LeakAlert.id))
        )
        return list(rows)
