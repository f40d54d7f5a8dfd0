"""The approval card's life: posted on request, decided by a button, updated while applying,
and closed with the outcome. Authorisation happens on every click, never only on the command."""

from __future__ import annotations

import json
import time
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import approvals, engine, ids, store
from bot.blocks.approval import (
    CardContext,
    applying_card,
    approval_card,
    closed_card,
    outcome_card,
    plan_file,
)
from bot.deps import Deps
from bot.engine import Outcome, Progress
from bot.models import ChangeRequest
from bot.planning import PauseOptions
from bot.slack.context import Respond, SlackContext

PROGRESS_INTERVAL = 1.0  # seconds between card updates while applying (chat.update is Tier 3)
PLATFORM_NOTES: dict[str, tuple[str, ...]] = {}


def card_context(slack: SlackContext) -> CardContext:
    platform = slack.deps.platform
    return CardContext(
        platform=platform.display_name,
        sandbox=slack.deps.is_sandbox,
        notes=PLATFORM_NOTES.get(platform.name, ()),
    )


def register(app: AsyncApp, deps: Deps, slack: SlackContext) -> None:
    slack.on_action(app, ids.APPROVE_REQUEST, approve)
    slack.on_action(app, ids.REJECT_REQUEST, reject)
    slack.on_action(app, ids.RETRY_REQUEST, retry)
    slack.on_action(app, ids.REPLAN_REQUEST, replan)


async def open_request(slack: SlackContext, outcome: Outcome, respond: Respond) -> None:
    """Post the card (with the snapshot in its thread), or apply at once where policy allows."""
    request = outcome.request
    channel, ts = await _post_card(slack, outcome)
    await respond(text=f"Request `{request.id}` is in <#{channel}> for approval.", response_type="ephemeral")
    if request.kind == "restore" and not await approvals.restore_needs_approval(
        slack.deps.settings, request.requester, is_member=slack.is_member
    ):
        decided = await engine.decide(slack.deps, request.id, actor=request.requester, approve=True)
        await run_apply(slack, decided)
        return
    await _upload_thread_files(slack, outcome, channel, ts)


async def _post_card(slack: SlackContext, outcome: Outcome) -> tuple[str, str]:
    text, blocks = approval_card(outcome.request, outcome.changes, card_context(slack))
    channel, ts = await slack.post(text=text, blocks=blocks)
    async with slack.deps.db.session() as session:
        request = await store.get_request(session, request_id=outcome.request.id)
        request.slack_channel, request.slack_ts = channel, ts
        session.add(request)
        await session.commit()
    outcome.request.slack_channel, outcome.request.slack_ts = channel, ts
    return channel, ts


async def _upload_thread_files(slack: SlackContext, outcome: Outcome, channel: str, ts: str) -> None:
    request = outcome.request
    async with slack.deps.db.session() as session:
        snapshot = await store.get_snapshot(session, snapshot_id=request.snapshot_id)
        automations = await store.snapshot_automations(session, snapshot_id=request.snapshot_id)
    uploads = [
        {
            "filename": f"{snapshot.id}.json",
            "title": f"Snapshot {snapshot.id}",
            "content": json.dumps(engine.snapshot_document(snapshot, automations), indent=2),
        }
    ]
    if len(outcome.changes) > 40:
        uploads.append(
            {
                "filename": f"{request.id}-plan.tsv",
                "title": f"Full plan {request.id}",
                "content": plan_file(request, outcome.changes),
            }
        )
    await slack.client.files_upload_v2(
        file_uploads=uploads,
        channel=channel,
        thread_ts=ts,
        initial_comment=f"Snapshot `{snapshot.id}` ({len(automations)} automations) taken before any change.",
    )


async def approve(slack: SlackContext, body: dict[str, Any], respond: Respond) -> None:
    request = await _authorized(slack, body, approve=True)
    decided = await engine.decide(slack.deps, request.id, actor=body["user"]["id"], approve=True)
    await run_apply(slack, decided)


async def reject(slack: SlackContext, body: dict[str, Any], respond: Respond) -> None:
    request = await _authorized(slack, body, approve=False)
    decided = await engine.decide(
        slack.deps, request.id, actor=body["user"]["id"], approve=False, reason="rejected in Slack"
    )
    await _show(slack, decided, *closed_card(decided, card_context(slack)))


async def retry(slack: SlackContext, body: dict[str, Any], respond: Respond) -> None:
    request = await _load(slack, body)
    await approvals.authorize_retry(slack.deps.settings, body["user"]["id"], is_member=slack.is_member)
    outcome = await engine.retry_failed(
        slack.deps, request.id, actor=body["user"]["id"], on_progress=_progress(slack, request)
    )
    await show_outcome(slack, outcome)


async def replan(slack: SlackContext, body: dict[str, Any], respond: Respond) -> None:
    """A stale plan is never applied; this makes a fresh one from a new snapshot."""
    user = body["user"]["id"]
    old = await _load(slack, body)
    if old.kind == "pause":
        options = PauseOptions(
            mode="exempt" if old.mode == "exempt" else "disable",
            only=frozenset(old.options.get("only", [])),
            keep=frozenset(old.options.get("keep", [])),
            tag=slack.deps.settings.guard_import_tag,
        )
        outcome = await engine.request_pause(
            slack.deps, options, actor=user, planned_end_at=old.planned_end_at
        )
    else:
        outcome = await engine.request_restore(slack.deps, actor=user, force=bool(old.options.get("force")))
    await open_request(slack, outcome, respond)


async def _load(slack: SlackContext, body: dict[str, Any]) -> ChangeRequest:
    async with slack.deps.db.session() as session:
        return await store.get_request(session, request_id=body["actions"][0]["value"])


async def _authorized(slack: SlackContext, body: dict[str, Any], *, approve: bool) -> ChangeRequest:
    request = await _load(slack, body)
    await approvals.authorize_decision(
        slack.deps.settings, request, body["user"]["id"], approve=approve, is_member=slack.is_member
    )
    return request


async def run_apply(slack: SlackContext, request: ChangeRequest) -> Outcome:
    outcome = await engine.apply(
        slack.deps, request.id, actor=request.decided_by or "slack", on_progress=_progress(slack, request)
    )
    await show_outcome(slack, outcome)
    from bot.slack import checklist  # manual steps (Intercom) wait for people: open their checklist

    await checklist.open_checklist(slack, outcome)
    return outcome


async def show_outcome(slack: SlackContext, outcome: Outcome) -> None:
    request = outcome.request
    where = card_context(slack)
    if request.status in ("stale", "rejected", "expired"):
        await _show(slack, request, *closed_card(request, where))
    elif request.status == "applying":
        pending = sum(1 for c in outcome.changes if c.status in ("planned", "in_flight"))
        await _show(
            slack,
            request,
            *applying_card(request, len(outcome.changes) - pending, len(outcome.changes), where),
        )
    else:
        await _show(slack, request, *outcome_card(request, outcome.changes, where, outcome.differences))


def _progress(slack: SlackContext, request: ChangeRequest):  # type: ignore[no-untyped-def]
    """A progress callback that updates the card at most once a PROGRESS_INTERVAL."""
    last = 0.0

    async def report(progress: Progress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < PROGRESS_INTERVAL:
            return
        last = now
        await _show(
            slack, request, *applying_card(request, progress.finished, progress.total, card_context(slack))
        )

    return report


async def _show(slack: SlackContext, request: ChangeRequest, text: str, blocks: list[dict[str, Any]]) -> None:
    if request.slack_channel and request.slack_ts:
        await slack.update(channel=request.slack_channel, ts=request.slack_ts, text=text, blocks=blocks)
    else:
        await slack.post(text=text, blocks=blocks)
