"""The manual checklist in Slack (Intercom): opened in the approval card's thread once a pause or
restore with manual steps is approved, ticked with `confirm_manual_step` buttons, refreshed in place.

Why the thread and not the card itself: the card keeps one life on every platform (decision,
progress, outcome, rendered by bot/slack/approvals.py) and shows the checklist's progress as
"applying 7/12"; the checklist can run to several messages (50 blocks each), and its mismatch
notices sit right under it with the snapshot file. The first page is also broadcast to the channel
(`reply_broadcast`) so nobody has to open the thread to see that work is waiting.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import checklist, engine, ids
from bot.blocks.checklist import (
    INTERCOM_NOTES,
    checklist_pages,
    finished_notice,
    mismatch_notice,
    page_of,
)
from bot.deps import Deps
from bot.errors import GuardError, UsageError
from bot.models import RequestStatus
from bot.slack import approvals
from bot.slack.context import Respond, SlackContext

log = logging.getLogger(__name__)


def register(app: AsyncApp, deps: Deps, slack: SlackContext) -> None:
    approvals.PLATFORM_NOTES["intercom"] = INTERCOM_NOTES  # what Intercom's API can and cannot suppress

    slack.on_action(app, ids.CONFIRM_MANUAL_STEP, confirm)


async def open_checklist(slack: SlackContext, outcome: engine.Outcome) -> None:
    """After apply: a request waiting for manual steps gets its checklist (once; later calls refresh it)."""
    if not checklist.needs_checklist(outcome):
        return
    request = outcome.request
    view = await checklist.load(slack.deps, request.id)
    if await checklist.location(slack.deps, request.id) is not None:
        await refresh(slack, view)
        return
    thread = request.slack_ts if request.slack_channel else None
    channel = request.slack_channel or slack.channel
    if not channel:
        raise GuardError("GUARD_CHANNEL is not set: the checklist has nowhere to go")
    pages: list[str] = []
    for index, (text, blocks) in enumerate(checklist_pages(view)):
        answer = await slack.client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread,
            reply_broadcast=bool(thread) and index == 0,
            unfurl_links=False,
            unfurl_media=False,
        )
        channel = answer["channel"]
        pages.append(answer["ts"])
    await checklist.record_posted(slack.deps, request, channel=channel, pages=pages, thread_ts=thread)


async def confirm(slack: SlackContext, body: dict[str, Any], respond: Respond) -> None:
    """`confirm_manual_step`: verify through the platform, refresh the checklist and the card, say
    what disagrees, and close the checklist when it was the last step."""
    user = body["user"]["id"]
    try:
        change_id = int(body["actions"][0].get("value") or "")
    except ValueError:
        raise UsageError("this button names no checklist step") from None
    result = await checklist.confirm_step(slack.deps, change_id, user, is_member=slack.is_member)
    view = await checklist.load(slack.deps, result.request.id)
    if result.already:
        who = result.change.confirmed_by
        await respond(
            text=f"Already ticked by <@{who}>." if who else "Already done.",
            response_type="ephemeral",
            replace_original=False,
        )
        return
    await refresh(slack, view, clicked=_clicked(body), change_id=change_id)
    where = await _thread(slack, view)
    if result.verification == checklist.MISMATCH:
        text, blocks = mismatch_notice(result, user, view.title(result.change))
        await slack.post(text=text, blocks=blocks, channel=where[0], thread_ts=where[1])
    if view.request.status != RequestStatus.APPLYING:
        await approvals.show_outcome(slack, result.outcome or engine.Outcome(view.request, view.changes))
        text, blocks = finished_notice(view)
        await slack.post(text=text, blocks=blocks, channel=where[0], thread_ts=where[1])
    else:
        await approvals.show_outcome(slack, engine.Outcome(view.request, view.changes))


async def refresh(
    slack: SlackContext,
    view: checklist.Checklist,
    *,
    clicked: tuple[str, str] | None = None,
    change_id: int | None = None,
) -> None:
    """Update the checklist in place: the first page (progress) and the page holding the ticked
    step, or every page when no step is named (or, if where it lives was not recorded, the message
    that was clicked)."""
    pages = checklist_pages(view)
    posted = await checklist.location(slack.deps, view.request.id)
    if posted is not None and len(posted.get("pages") or []) == len(pages):
        wanted = range(len(pages)) if change_id is None else sorted({0, page_of(view, change_id)})
        for index in wanted:
            text, blocks = pages[index]
            await slack.update(channel=posted["channel"], ts=posted["pages"][index], text=text, blocks=blocks)
        return
    if clicked is not None:
        text, blocks = pages[page_of(view, change_id) if change_id is not None else 0]
        await slack.update(channel=clicked[0], ts=clicked[1], text=text, blocks=blocks)


async def _thread(slack: SlackContext, view: checklist.Checklist) -> tuple[str | None, str | None]:
    """Where notices go: the checklist's thread (the card's), else under the checklist itself."""
    posted = await checklist.location(slack.deps, view.request.id) or {}
    channel = posted.get("channel") or view.request.slack_channel
    thread = posted.get("thread_ts") or view.request.slack_ts or (posted.get("pages") or [None])[0]
    return channel, thread


def _clicked(body: dict[str, Any]) -> tuple[str, str] | None:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    return (channel, ts) if channel and ts else None
