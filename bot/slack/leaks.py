"""Leak alerts in Slack: in the thread of the import run's progress message (or the migration
channel when the run has none), naming the workflow and the conversation, with links.

`make_batch_listener(deps, slack)` is what the progress API calls for every reported batch; the
check runs after the API has answered (a background task), one at a time per run: while a run's
previous sample is still being read, the next batch is not sampled (it is a sample anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlmodel import select

from bot import leaks
from bot.blocks.checklist import leak_alert
from bot.deps import Deps
from bot.models import ImportRun, LeakAlert, TrackedWorkflow
from bot.progress import BatchListener, BatchStored
from bot.slack.context import SlackContext

log = logging.getLogger(__name__)


def make_batch_listener(deps: Deps, slack: SlackContext, *, sample: int = leaks.SAMPLE) -> BatchListener:
    """A progress batch listener: returns at once; the sample is read in the background."""
    busy: set[str] = set()

    async def listener(batch: BatchStored) -> None:
        run_id, record_ids = batch.run_id, list(batch.record_ids)
        if not record_ids or not leaks.can_watch(deps) or run_id in busy:
            return
        busy.add(run_id)

        async def work() -> None:
            try:
                await check_and_alert(deps, slack, run_id, record_ids, sample=sample)
            finally:
                busy.discard(run_id)

        slack.spawn(work(), name=f"leak-watch:{run_id}")

    return listener


async def check_and_alert(
    deps: Deps, slack: SlackContext, run_id: str, record_ids: Sequence[str], *, sample: int = leaks.SAMPLE
) -> list[LeakAlert]:
    """Check one batch now and post what is new."""
    alerts = await leaks.check_batch(deps, run_id, record_ids, sample=sample)
    if alerts:
        await post_alerts(deps, slack, run_id, alerts)
    return alerts


async def post_alerts(deps: Deps, slack: SlackContext, run_id: str, alerts: Sequence[LeakAlert]) -> None:
    async with deps.db.session() as session:
        run = await session.get(ImportRun, run_id)
        rows = await session.exec(select(TrackedWorkflow).where(TrackedWorkflow.target == deps.target))
        tracked = list(rows)
    if run is None:
        return
    platform = deps.platform
    conversation_links: dict[str, str] = {}
    workflow_links: dict[str, str] = {}
    if isinstance(platform, leaks.LeakWatch):
        for record_id in {alert.record_id for alert in alerts}:
            conversation_links[record_id] = await platform.conversation_link(record_id)
        for row in tracked:
            if row.title:
                workflow_links.setdefault(row.title.casefold(), await platform.workflow_link(row.workflow_id))
    text, blocks = leak_alert(
        run,
        alerts,
        conversation_links=conversation_links,
        workflow_links=workflow_links,
        notify=deps.settings.guard_oncall,
    )
    if run.slack_channel and run.slack_ts:
        await slack.post(text=text, blocks=blocks, channel=run.slack_channel, thread_ts=run.slack_ts)
    elif slack.channel:
        await slack.post(text=text, blocks=blocks)
    else:
        log.warning(
            "leak alert for run %s not posted (no progress message, no GUARD_CHANNEL): %s", run_id, text
        )
