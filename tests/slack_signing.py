"""Build signed Slack requests (slash commands, block actions, events) the way Slack sends them.

    body = slash_command_body(text="pause --mode exempt", response_url=fake.response_url())
    resp = await http.post("/slack/events", content=body, headers=signed_headers(SECRET, body))

Bodies are ``str`` because the signature covers the exact bytes: send them unchanged (``content=``).
Defaults match ``tests.fakes.slack`` (team, app and channel ids), so payloads and the fake agree.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.fakes.slack import (
    DEFAULT_APP_ID,
    DEFAULT_BOT_USER_ID,
    DEFAULT_CHANNEL_ID,
    DEFAULT_TEAM_DOMAIN,
    DEFAULT_TEAM_ID,
)

__all__ = [
    "DEFAULT_RESPONSE_URL",
    "DEFAULT_USER_ID",
    "FORM_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "block_actions_body",
    "event_callback_body",
    "make_trigger_id",
    "signed_headers",
    "slash_command_body",
]

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"
DEFAULT_USER_ID = "U0REQUESTER"
DEFAULT_CHANNEL_NAME = "migration"
# Not a reachable URL; pass fake.response_url(...) when the bot is expected to use it.
DEFAULT_RESPONSE_URL = f"https://hooks.slack.com/commands/{DEFAULT_TEAM_ID}/1000000000001/fakeresponseurl"
# The deprecated verification token Slack still puts in payloads; bolt ignores it.
VERIFICATION_TOKEN = "fakeverificationtoken"


def signed_headers(
    secret: str,
    body: str | bytes,
    timestamp: int | str | None = None,
    *,
    content_type: str = FORM_CONTENT_TYPE,
) -> dict[str, str]:
    """Slack's request headers for ``body``: ``x-slack-request-timestamp``, ``x-slack-signature``
    (v0 HMAC-SHA256 made by ``slack_sdk.signature.SignatureVerifier``) and ``content-type``.

    ``timestamp`` defaults to now; pass an old one (now - 301 s) to test the replay window.
    """
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "content-type": content_type,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": signature,
    }


def make_trigger_id() -> str:
    """A trigger_id shaped like Slack's (``13345224609.738474920.8088930838d88f008e0``)."""
    return f"{secrets.randbelow(10**11):011d}.{secrets.randbelow(10**9):09d}.{secrets.token_hex(16)}"


def _now_ts() -> str:
    now = time.time_ns() // 1000
    return f"{now // 1_000_000}.{now % 1_000_000:06d}"


def slash_command_body(
    command: str = "/migration",
    text: str = "",
    user_id: str = DEFAULT_USER_ID,
    channel_id: str = DEFAULT_CHANNEL_ID,
    response_url: str = DEFAULT_RESPONSE_URL,
    trigger_id: str | None = None,
    *,
    user_name: str | None = None,
    channel_name: str = DEFAULT_CHANNEL_NAME,
    team_id: str = DEFAULT_TEAM_ID,
    team_domain: str = DEFAULT_TEAM_DOMAIN,
    api_app_id: str = DEFAULT_APP_ID,
    enterprise_id: str | None = None,
) -> str:
    """A slash-command request body, form-encoded in the field order Slack uses."""
    fields: list[tuple[str, str]] = [
        ("token", VERIFICATION_TOKEN),
        ("team_id", team_id),
        ("team_domain", team_domain),
    ]
    if enterprise_id:
        fields += [("enterprise_id", enterprise_id), ("enterprise_name", "Fake Enterprise")]
    fields += [
        ("channel_id", channel_id),
        ("channel_name", channel_name),
        ("user_id", user_id),
        ("user_name", user_name or user_id.lower()),
        ("command", command),
        ("text", text),
        ("api_app_id", api_app_id),
        ("is_enterprise_install", "false"),
        ("response_url", response_url),
        ("trigger_id", trigger_id or make_trigger_id()),
    ]
    return urlencode(fields)


def block_actions_body(
    action_id: str,
    value: str | None = None,
    user_id: str = DEFAULT_USER_ID,
    channel_id: str = DEFAULT_CHANNEL_ID,
    message_ts: str | None = None,
    response_url: str = DEFAULT_RESPONSE_URL,
    *,
    block_id: str = "actions",
    action_type: str = "button",
    button_text: str = "Button",
    style: str | None = None,
    message: dict[str, Any] | None = None,
    is_ephemeral: bool = False,
    trigger_id: str | None = None,
    user_name: str | None = None,
    channel_name: str = DEFAULT_CHANNEL_NAME,
    team_id: str = DEFAULT_TEAM_ID,
    team_domain: str = DEFAULT_TEAM_DOMAIN,
    api_app_id: str = DEFAULT_APP_ID,
    state: dict[str, Any] | None = None,
    extra_payload: dict[str, Any] | None = None,
) -> str:
    """An interactivity request body: form-encoded ``payload=<JSON>`` of a ``block_actions`` click.

    ``message`` is the clicked message (e.g. a dict from ``fake.messages(channel)``: its ``text``,
    ``blocks``, ``user``, ``bot_id``, ``thread_ts`` are copied); without it a minimal bot message with
    ``message_ts`` is used. Ephemeral containers carry no ``message``, as in Slack.
    """
    ts = message_ts or (message or {}).get("ts") or _now_ts()
    action: dict[str, Any] = {
        "type": action_type,
        "action_id": action_id,
        "block_id": block_id,
        "action_ts": _now_ts(),
    }
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": button_text, "emoji": True}
    if value is not None:
        action["value"] = value
    if style:
        action["style"] = style

    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {
            "id": user_id,
            "username": user_name or user_id.lower(),
            "name": user_name or user_id.lower(),
            "team_id": team_id,
        },
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        },
        "trigger_id": trigger_id or make_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
    }
    if not is_ephemeral:
        src = message or {}
        msg: dict[str, Any] = {
            "type": "message",
            "text": src.get("text") or "",
            "user": src.get("user") or DEFAULT_BOT_USER_ID,
            "ts": ts,
        }
        for key in ("bot_id", "app_id", "team", "blocks", "thread_ts", "attachments", "metadata"):
            if src.get(key) is not None:
                msg[key] = src[key]
        payload["message"] = msg
    payload["state"] = state if state is not None else {"values": {}}
    payload["response_url"] = response_url
    payload["actions"] = [action]
    if extra_payload:
        payload.update(extra_payload)
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def event_callback_body(
    event: dict[str, Any],
    *,
    team_id: str = DEFAULT_TEAM_ID,
    api_app_id: str = DEFAULT_APP_ID,
    event_id: str | None = None,
    event_time: int | None = None,
) -> str:
    """An Events API ``event_callback`` JSON body (sign it with ``content_type=JSON_CONTENT_TYPE``)."""
    body = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": event_time if event_time is not None else int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": DEFAULT_BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    return json.dumps(body, separators=(",", ":"))
