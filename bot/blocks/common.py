"""Small pure Block Kit pieces shared by every card. Limits from Slack: 50 blocks a message,
3,000 characters a section, 150 a header, 75 a button label, 10 context elements."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

Block = dict[str, Any]

MAX_BLOCKS = 50
SECTION_CHARS = 3000
HEADER_CHARS = 150
SANDBOX_NOTE = (
    ":test_tube: *Sandbox*: the embedded sample helpdesk. No real automations or customers are touched."
)


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_CHARS), "emoji": True}}


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_CHARS)}}


def fields(pairs: Iterable[tuple[str, str]]) -> Block:
    items = [{"type": "mrkdwn", "text": clip(f"*{label}*\n{value}", 2000)} for label, value in pairs]
    return {"type": "section", "fields": items[:10]}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(t, 3000)} for t in texts[:10]]}


def divider() -> Block:
    return {"type": "divider"}


def button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    confirm: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(text, 75), "emoji": True},
        "action_id": action_id,
        "value": value[:2000],
    }
    if style:
        element["style"] = style
    if confirm:
        title, body, yes = confirm
        element["confirm"] = {
            "title": {"type": "plain_text", "text": clip(title, 100)},
            "text": {"type": "mrkdwn", "text": clip(body, 300)},
            "confirm": {"type": "plain_text", "text": clip(yes, 30)},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
        if style in ("primary", "danger"):
            element["confirm"]["style"] = style
    return element


def actions(block_id: str, *elements: dict[str, Any]) -> Block:
    return {"type": "actions", "block_id": block_id, "elements": list(elements)[:25]}


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_date(when: datetime, token: str = "{date_short_pretty} at {time}") -> str:
    """Slack renders this in each reader's own time zone; the fallback is UTC."""
    return f"<!date^{int(when.timestamp())}^{token}|{when:%Y-%m-%d %H:%M} UTC>"


def mention(actor: str | None) -> str:
    """`U…` -> <@U…>, `S…` -> <!subteam^S…>, anything else (cli:alice, policy) as written."""
    if not actor:
        return "nobody"
    if actor[:1] == "U" and actor.isalnum():
        return f"<@{actor}>"
    if actor[:1] == "S" and actor.isalnum():
        return f"<!subteam^{actor}>"
    return f"`{actor}`"


def escape(text: str) -> str:
    """Slack mrkdwn needs &, < and > escaped in text that people wrote."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def line_sections(lines: Iterable[str], *, limit: int = SECTION_CHARS - 100) -> list[Block]:
    """Pack lines into as few sections as the 3,000-character limit allows."""
    blocks: list[Block] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        if chunk and size + len(line) + 1 > limit:
            blocks.append(section("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        blocks.append(section("\n".join(chunk)))
    return blocks


def fit(blocks: list[Block], tail: list[Block]) -> list[Block]:
    """Keep the head within Slack's 50-block limit while always keeping the tail (buttons)."""
    room = MAX_BLOCKS - len(tail)
    return blocks[:room] + tail
