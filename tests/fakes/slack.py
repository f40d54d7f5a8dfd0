"""A stateful fake of the Slack Web API, written as an ASGI app.

The same object serves in-process (``httpx.ASGITransport(app=fake)``) and over a real socket
(``serve_in_thread(fake)``, needed by slack_sdk's aiohttp-based ``AsyncWebClient``)::

    fake = FakeSlack(usergroups={"S0APPROVERS": ["U0MANAGER1"]})
    with serve_in_thread(fake) as base_url:              # "http://127.0.0.1:PORT/"
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
        await client.chat_postMessage(channel="C0MIGRATION", text="hi")
        assert fake.messages("C0MIGRATION")[0]["text"] == "hi"

Routes: ``/api/{method}`` (the Web API: query, form-encoded, multipart and JSON bodies, like Slack),
``/upload/v1/{key}`` (the upload URLs minted by ``files.getUploadURLExternal``) and
``/response/{id}`` (``response_url`` endpoints minted by ``FakeSlack.response_url()``).

Answers follow Slack: HTTP 200 with ``{"ok": false, "error": ...}`` for API errors, HTTP 429 with
``Retry-After`` when rate limited. When ``../shared/specs/slack/slack_web_openapi_v2.json`` exists, every
call of a method that spec covers is checked (required parameters present, no parameter unknown to the
spec except the documented post-2020 allow-list) and violations land in ``fake.spec_violations``.

State is guarded by a lock: the server may run in another thread than the test reading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import queue
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, Router, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_BOT_ID",
    "DEFAULT_BOT_TOKEN",
    "DEFAULT_BOT_USER_ID",
    "DEFAULT_CHANNEL_ID",
    "DEFAULT_TEAM_DOMAIN",
    "DEFAULT_TEAM_ID",
    "POST_2020_PARAMS",
    "SLACK_SPEC_PATH",
    "SPECS_DIR",
    "FakeSlack",
    "SlackCall",
    "SpecMethod",
    "SpecViolation",
    "load_spec_document",
    "serve_in_thread",
    "spec_methods",
]

# /work/main/tests/fakes/slack.py -> parents[3] is the directory holding the checkout (and shared/).
SPECS_DIR = Path(__file__).resolve().parents[3] / "shared" / "specs"
SLACK_SPEC_PATH = SPECS_DIR / "slack" / "slack_web_openapi_v2.json"

# Defaults chosen to match the id patterns of the Slack spec (e.g. channels ^[CGD][A-Z0-9]{8,}$).
DEFAULT_BOT_TOKEN = "xoxb-0000000001-0000000002-fakebottoken"
DEFAULT_APP_TOKEN = "xapp-1-A0FAKEAPP1-0000000003-fakeapptoken"
DEFAULT_TEAM_ID = "T0FAKETEAM"
DEFAULT_TEAM_NAME = "Fake Workspace"
DEFAULT_TEAM_DOMAIN = "fake-workspace"
DEFAULT_BOT_USER_ID = "U0FAKEBOT1"
DEFAULT_BOT_ID = "B0FAKEBOT1"
DEFAULT_BOT_NAME = "migration-guard"
DEFAULT_APP_ID = "A0FAKEAPP1"
DEFAULT_CHANNEL_ID = "C0MIGRATION"
DEFAULT_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "usergroups:read",
    "users:read",
    "files:write",
)

# Parameters slack_sdk 3.4x / bolt 1.30 really send that the 2020 spec does not know. Checked against
# slack_sdk.web.async_client: every None is dropped before sending, so these only appear when used.
POST_2020_PARAMS: dict[str, frozenset[str]] = {
    # AsyncWebClient(team_id=...) adds team_id to every call (org-wide installs).
    "*": frozenset({"team_id"}),
    # Newer chat_postMessage kwargs (message metadata, markdown_text, container_id for agent threads).
    "chat.postMessage": frozenset({"metadata", "markdown_text", "container_id"}),
    # chat_update: file_ids, reply_broadcast, metadata, markdown_text.
    "chat.update": frozenset({"metadata", "markdown_text", "file_ids", "reply_broadcast"}),
    "chat.postEphemeral": frozenset({"markdown_text"}),
    # views_open(interactivity_pointer=...): the workflow-function variant of trigger_id.
    "views.open": frozenset({"interactivity_pointer"}),
}

_CHANNEL_ID_RE = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_USER_ID_RE = re.compile(r"^[UW][A-Z0-9]{2,}$")
_JSON_TYPES = ("application/json",)
_HTTP_VERBS = frozenset({"get", "post", "put", "patch", "delete"})


# --------------------------------------------------------------------------------------------------
# spec loading (once per process)


@dataclass(frozen=True)
class SpecMethod:
    """What the spec says about one Web API method's request parameters."""

    name: str
    http_method: str
    required: frozenset[str]
    known: frozenset[str]


@dataclass(frozen=True)
class SpecViolation:
    """A request that does not match the Slack spec. kind: ``missing_required`` or ``unknown_param``."""

    method: str
    kind: str
    param: str
    detail: str


@functools.lru_cache(maxsize=4)
def _load_spec_document(path: str) -> dict[str, Any] | None:
    p = Path(path)
    if not p.is_file():
        return None
    with p.open(encoding="utf-8") as fh:
        return json.load(fh)


def load_spec_document(path: str | Path = SLACK_SPEC_PATH) -> dict[str, Any] | None:
    """The parsed Swagger 2.0 document (plain json, cached per process), or None when the file is absent.

    Treat the result as read-only: it is shared.
    """
    return _load_spec_document(str(Path(path).resolve()))


@functools.lru_cache(maxsize=4)
def _spec_methods(path: str) -> Mapping[str, SpecMethod] | None:
    doc = _load_spec_document(path)
    if doc is None:
        return None
    table: dict[str, SpecMethod] = {}
    for raw_path, ops in doc.get("paths", {}).items():
        name = raw_path.lstrip("/")
        for verb, op in ops.items():
            if verb.lower() not in _HTTP_VERBS or not isinstance(op, dict):
                continue
            params = [p for p in op.get("parameters", []) if isinstance(p, dict) and "name" in p]
            table[name] = SpecMethod(
                name=name,
                http_method=verb.upper(),
                required=frozenset(p["name"] for p in params if p.get("required") and p["name"] != "token"),
                known=frozenset(p["name"] for p in params),
            )
    return table


def spec_methods(path: str | Path = SLACK_SPEC_PATH) -> Mapping[str, SpecMethod] | None:
    """Method name (e.g. ``chat.update``) -> SpecMethod, from the spec (cached), or None if absent."""
    return _spec_methods(str(Path(path).resolve()))


# --------------------------------------------------------------------------------------------------
# records


@dataclass
class SlackCall:
    """One request to ``/api/{method}`` as the fake saw it (token is not part of ``params``)."""

    method: str
    params: dict[str, Any]
    token: str | None
    timestamp: float
    http_method: str
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return None if self.ok else self.response.get("error")


class _SlackError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class _RateLimit:
    next_calls: int = 0
    per_second: float | None = None
    retry_after: int = 1
    window: deque[float] = field(default_factory=deque)


@dataclass
class _Failure:
    error: str
    count: int
    status: int
    headers: dict[str, str]


@dataclass
class _Upload:
    file_id: str
    key: str
    filename: str
    length: int
    alt_txt: str | None
    snippet_type: str | None
    content: bytes | None = None
    completed: bool = False


@dataclass
class _ResponseUrl:
    rid: str
    channel: str | None
    message_ts: str | None
    user_id: str | None
    uses: int = 0


# --------------------------------------------------------------------------------------------------
# small parsing helpers


def _s(value: Any) -> str | None:
    """A parameter as a string ('' and None are both "absent")."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if text != "" else None


def _json_param(value: Any, error: str) -> Any:
    """blocks/attachments/view/files: a JSON string in form bodies, a real value in JSON bodies."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise _SlackError(error, detail=f"not valid JSON: {exc}") from None
    return value


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if not msg.is_multipart():
        return fields, files
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[str(name)] = (filename, payload)
        else:
            fields[str(name)] = payload.decode("utf-8", "replace")
    return fields, files


# --------------------------------------------------------------------------------------------------
# Block Kit limits (the ones Slack enforces with invalid_blocks; see shared/slack-notes.md 3.1)


def _text_obj_errors(obj: Any, pointer: str, max_len: int, *, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict):
        return [f"must be a text object [json-pointer:{pointer}]"]
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    errors = []
    if obj.get("type") not in kinds:
        errors.append(f"must be one of {list(kinds)} [json-pointer:{pointer}/type]")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"must be a non-empty string [json-pointer:{pointer}/text]")
    elif len(text) > max_len:
        errors.append(f"must be less than {max_len + 1} characters [json-pointer:{pointer}/text]")
    return errors


def _element_errors(el: Any, pointer: str) -> list[str]:
    if not isinstance(el, dict) or not isinstance(el.get("type"), str):
        return [f"missing required field: type [json-pointer:{pointer}]"]
    errors: list[str] = []
    action_id = el.get("action_id")
    if isinstance(action_id, str) and len(action_id) > 255:
        errors.append(f"must be less than 256 characters [json-pointer:{pointer}/action_id]")
    if el["type"] == "button":
        errors += _text_obj_errors(el.get("text"), f"{pointer}/text", 75, plain_only=True)
        value = el.get("value")
        if isinstance(value, str) and len(value) > 2000:
            errors.append(f"must be less than 2001 characters [json-pointer:{pointer}/value]")
        url = el.get("url")
        if isinstance(url, str) and len(url) > 3000:
            errors.append(f"must be less than 3001 characters [json-pointer:{pointer}/url]")
        if "style" in el and el["style"] not in ("primary", "danger"):
            errors.append(f"must be one of ['primary', 'danger'] [json-pointer:{pointer}/style]")
    confirm = el.get("confirm")
    if confirm is not None:
        cp = f"{pointer}/confirm"
        if not isinstance(confirm, dict):
            errors.append(f"must be an object [json-pointer:{cp}]")
        else:
            errors += _text_obj_errors(confirm.get("title"), f"{cp}/title", 100, plain_only=True)
            errors += _text_obj_errors(confirm.get("text"), f"{cp}/text", 300)
            errors += _text_obj_errors(confirm.get("confirm"), f"{cp}/confirm", 30, plain_only=True)
            errors += _text_obj_errors(confirm.get("deny"), f"{cp}/deny", 30, plain_only=True)
    return errors


_KNOWN_BLOCK_TYPES = {
    "actions",
    "context",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "markdown",
    "rich_text",
    "section",
    "video",
    "table",
    "context_actions",
}


def block_kit_errors(blocks: Any, *, max_blocks: int = 50) -> list[str]:
    """Slack-style error strings for the Block Kit limits the fake enforces (empty list = valid)."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        p = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"missing required field: type [json-pointer:{p}]")
            continue
        kind = block["type"]
        block_id = block.get("block_id")
        if isinstance(block_id, str) and len(block_id) > 255:
            errors.append(f"must be less than 256 characters [json-pointer:{p}/block_id]")
        if kind not in _KNOWN_BLOCK_TYPES:
            errors.append(f"unsupported type: {kind} [json-pointer:{p}/type]")
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"must provide text or fields [json-pointer:{p}]")
            if "text" in block:
                errors += _text_obj_errors(block["text"], f"{p}/text", 3000)
            fields = block.get("fields")
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > 10:
                    errors.append(f"no more than 10 items allowed [json-pointer:{p}/fields]")
                else:
                    for j, f in enumerate(fields):
                        errors += _text_obj_errors(f, f"{p}/fields/{j}", 2000)
            if "accessory" in block:
                errors += _element_errors(block["accessory"], f"{p}/accessory")
        elif kind == "header":
            errors += _text_obj_errors(block.get("text"), f"{p}/text", 150, plain_only=True)
        elif kind in ("context", "actions"):
            limit = 10 if kind == "context" else 25
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                errors.append(f"must provide a non-empty array [json-pointer:{p}/elements]")
            elif len(elements) > limit:
                errors.append(f"no more than {limit} items allowed [json-pointer:{p}/elements]")
            elif kind == "actions":
                for j, el in enumerate(elements):
                    errors += _element_errors(el, f"{p}/elements/{j}")
        elif kind == "markdown":
            text = block.get("text")
            if not isinstance(text, str) or len(text) > 12000:
                errors.append(f"must be a string of at most 12000 characters [json-pointer:{p}/text]")
    return errors


# --------------------------------------------------------------------------------------------------
# the fake


class FakeSlack:
    """Stateful fake Slack Web API; an ASGI app (``await fake(scope, receive, send)``).

    Configuration (kept by ``reset()``): token, team/bot identity, ``channels``, ``users``,
    ``usergroups``, ``scopes``, spec checking. Everything else (recorded calls, messages, files,
    knobs) is state and is cleared by ``reset()``.
    """

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        app_token: str = DEFAULT_APP_TOKEN,
        team_id: str = DEFAULT_TEAM_ID,
        team_name: str = DEFAULT_TEAM_NAME,
        team_domain: str = DEFAULT_TEAM_DOMAIN,
        bot_user_id: str = DEFAULT_BOT_USER_ID,
        bot_id: str = DEFAULT_BOT_ID,
        bot_name: str = DEFAULT_BOT_NAME,
        app_id: str = DEFAULT_APP_ID,
        channels: Mapping[str, str] | Iterable[str] | None = None,
        users: Mapping[str, str | Mapping[str, Any]] | None = None,
        usergroups: Mapping[str, Iterable[str]] | None = None,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        spec_path: str | Path | None = SLACK_SPEC_PATH,
        strict: bool = False,
        ts_start: float | None = None,
        base_url: str = "http://testserver/",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.app_id = app_id
        self.scopes = tuple(scopes)
        self.strict = strict
        self.base_url = base_url
        self._lock = threading.RLock()
        self._ts_start = ts_start
        self._spec: Mapping[str, SpecMethod] | None = spec_methods(spec_path) if spec_path else None

        # configuration
        self._channels: dict[str, dict[str, Any]] = {}
        self._known_channels_only = channels is not None
        if channels is not None:
            items = channels.items() if isinstance(channels, Mapping) else ((c, None) for c in channels)
            for cid, name in items:
                self.add_channel(cid, name)
        self._users: dict[str, dict[str, Any]] = {}
        self.add_user(bot_user_id, bot_name, is_bot=True, real_name=bot_name)
        for uid, spec in (users or {}).items():
            if isinstance(spec, str):
                self.add_user(uid, spec)
            else:
                self.add_user(uid, **dict(spec))
        self._usergroups: dict[str, list[str]] = {}
        for gid, members in (usergroups or {}).items():
            self.set_usergroup(gid, members)

        self._router = Router(
            routes=[
                Route("/api/{method}", self._api_endpoint, methods=["GET", "POST"]),
                Route("/upload/v1/{key}", self._upload_endpoint, methods=["POST", "PUT"]),
                Route("/response/{rid}", self._response_endpoint, methods=["POST"]),
                WebSocketRoute("/socket-mode", self._socket_endpoint),
            ]
        )
        self._handlers: dict[str, Callable[[dict[str, Any], Request], dict[str, Any]]] = {
            "api.test": self._api_test,
            "apps.connections.open": self._apps_connections_open,
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.info": self._conversations_info,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "views.open": self._views_open,
            "views.publish": self._views_publish,
            "views.update": self._views_update,
        }
        self._init_state()

    def _init_state(self) -> None:
        self._calls: list[SlackCall] = []
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._uploads: dict[str, _Upload] = {}
        self._upload_keys: dict[str, str] = {}
        self._files: list[dict[str, Any]] = []
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._response_posts: list[dict[str, Any]] = []
        self._views: list[dict[str, Any]] = []
        self._rate_limits: dict[str, _RateLimit] = {}
        self._latency: dict[str, float] = {}
        self._failures: dict[str, deque[_Failure]] = {}
        self._last_ts_us = 0
        self._ts_seq = 0
        self._id_seq = 0
        self.spec_violations: list[SpecViolation] = []
        self.socket_connected = threading.Event()
        self.socket_acks: list[dict[str, Any]] = []
        self._socket_out: queue.Queue[dict[str, Any]] = queue.Queue()

    # ---------------------------------------------------------------- Socket Mode

    def _apps_connections_open(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        """Socket Mode: hand the app a WebSocket URL on this fake (app-level token required)."""
        ws_base = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return {"ok": True, "url": ws_base.rstrip("/") + "/socket-mode"}

    def socket_send(self, envelope: dict[str, Any]) -> None:
        """Queue an envelope (e.g. ``{"envelope_id", "type": "slash_commands", "payload", ...}``)
        for the connected Socket Mode client; thread-safe."""
        self._socket_out.put(envelope)

    async def _socket_endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": self.app_id}}
        )
        self.socket_connected.set()

        async def pump() -> None:
            while True:
                try:
                    envelope = self._socket_out.get_nowait()
                except queue.Empty:
                    await asyncio.sleep(0.01)
                    continue
                await websocket.send_json(envelope)

        sender = asyncio.create_task(pump())
        try:
            while True:
                message = await websocket.receive_json()
                with self._lock:
                    self.socket_acks.append(message)
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            self.socket_connected.clear()

    # ---------------------------------------------------------------- ASGI

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._router(scope, receive, send)

    @property
    def api_url(self) -> str:
        """The Web API base URL for clients: ``base_url + "api/"``."""
        return self.base_url.rstrip("/") + "/api/"

    @property
    def spec_checks_enabled(self) -> bool:
        return self._spec is not None

    # ---------------------------------------------------------------- configuration

    def add_channel(
        self, channel_id: str, name: str | None = None, *, is_private: bool = False, is_member: bool = True
    ) -> None:
        """Register a conversation. With ``channels=`` given, only registered ids are accepted."""
        with self._lock:
            self._channels[channel_id] = {
                "id": channel_id,
                "name": name or channel_id.lower(),
                "is_private": is_private or channel_id.startswith("G"),
                "is_im": channel_id.startswith("D"),
                "is_member": is_member,
                "created": 1700000000,
            }

    def add_user(
        self,
        user_id: str,
        name: str | None = None,
        *,
        real_name: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        tz: str = "Europe/Berlin",
        email: str | None = None,
        **extra: Any,
    ) -> None:
        """Register (or replace) a user for ``users.info``; ``extra`` fields are merged into the object."""
        name = name or user_id.lower()
        real_name = real_name or name
        profile = {"real_name": real_name, "display_name": name, "real_name_normalized": real_name}
        if email:
            profile["email"] = email
        profile.update(extra.pop("profile", {}))
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": deleted,
            "real_name": real_name,
            "tz": tz,
            "tz_label": "Central European Time",
            "tz_offset": 3600,
            "is_admin": False,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": 1700000000,
            "profile": profile,
        }
        user.update(extra)
        with self._lock:
            self._users[user_id] = user

    def set_usergroup(self, usergroup_id: str, user_ids: Iterable[str]) -> None:
        """Set the members returned by ``usergroups.users.list`` for a user group (``S…``)."""
        with self._lock:
            self._usergroups[usergroup_id] = list(user_ids)

    def remove_usergroup(self, usergroup_id: str) -> None:
        with self._lock:
            self._usergroups.pop(usergroup_id, None)

    def seed_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U0SOMEHUMAN",
        ts: str | None = None,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> str:
        """Put a message by someone else (not the bot) into a channel; returns its ts.

        The bot cannot ``chat.update`` it (``cant_update_message``), as in Slack.
        """
        with self._lock:
            cid = self._resolve_channel(channel)
            msg = self._new_message(cid, text=text, blocks=blocks, thread_ts=thread_ts, ts=ts)
            msg.update(user=user, bot_id=None, app_id=None)
            return msg["ts"]

    # ---------------------------------------------------------------- knobs

    def rate_limit(
        self,
        method: str,
        *,
        next_calls: int | None = None,
        per_second: float | None = None,
        retry_after: int = 1,
    ) -> None:
        """Answer HTTP 429 + ``Retry-After: retry_after`` for ``method``.

        ``next_calls=N``: the next N calls are refused. ``per_second=X``: a call is refused when X calls
        were already accepted in the trailing second. Both may be combined. ``method="*"`` applies to
        every method without its own setting.
        """
        with self._lock:
            rl = self._rate_limits.setdefault(method, _RateLimit())
            if next_calls is not None:
                rl.next_calls = next_calls
            if per_second is not None:
                rl.per_second = per_second
            rl.retry_after = retry_after

    def clear_rate_limits(self, method: str | None = None) -> None:
        with self._lock:
            if method is None:
                self._rate_limits.clear()
            else:
                self._rate_limits.pop(method, None)

    def set_latency(self, method: str, seconds: float) -> None:
        """Delay every answer of ``method`` by ``seconds`` (``"*"`` = default for all methods)."""
        with self._lock:
            if seconds <= 0:
                self._latency.pop(method, None)
            else:
                self._latency[method] = seconds

    def fail_next(
        self,
        method: str,
        error: str = "internal_error",
        *,
        count: int = 1,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail with ``{"ok": false, "error": error}``.

        ``status=500``/``503`` simulates a server error (slack_sdk raises SlackApiError with that status).
        """
        with self._lock:
            self._failures.setdefault(method, deque()).append(
                _Failure(error=error, count=count, status=status, headers=dict(headers or {}))
            )

    def reset(self) -> None:
        """Forget recorded calls, messages, files, response_url posts, views, spec violations and knobs."""
        with self._lock:
            self._init_state()

    # ---------------------------------------------------------------- recording helpers

    def calls(self, method: str | None = None) -> list[SlackCall]:
        """Every ``/api/*`` call in arrival order (including refused ones: check ``.status``/``.ok``)."""
        with self._lock:
            return [copy.deepcopy(c) for c in self._calls if method is None or c.method == method]

    def call_count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for c in self._calls if method is None or c.method == method)

    def messages(self, channel: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Current state of the messages in a channel (top level and thread replies), oldest first.

        Each: ``channel, ts, text, blocks, attachments, thread_ts, user, bot_id, app_id, metadata,
        edited`` (None or ``{"user", "ts"}``), ``updates`` (number of edits), ``history`` (earlier
        versions: ``{"text", "blocks", "attachments"}``), ``deleted``.
        """
        with self._lock:
            try:
                cid = self._resolve_channel(channel, user_to_dm=True)
            except _SlackError:
                return []
            return [
                copy.deepcopy(m) for m in self._messages.get(cid, []) if include_deleted or not m["deleted"]
            ]

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """One message by ts (deleted ones included), or None."""
        for m in self.messages(channel, include_deleted=True):
            if m["ts"] == ts:
                return m
        return None

    def replies(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """Messages posted into the thread of ``thread_ts`` (not the parent)."""
        return [m for m in self.messages(channel) if m["thread_ts"] == thread_ts and m["ts"] != thread_ts]

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        """Ephemeral messages (chat.postEphemeral and ephemeral response_url posts), oldest first.

        Each: ``channel, user, ts, text, blocks, attachments, thread_ts, via`` (``"chat.postEphemeral"``
        or ``"response_url"``), ``replaced`` (later versions from replace_original posts).
        """
        with self._lock:
            return copy.deepcopy(self._ephemerals)

    @property
    def uploaded_files(self) -> list[dict[str, Any]]:
        """Files completed with files.completeUploadExternal, oldest first.

        Each: ``id, filename, title, length, content`` (bytes), ``alt_txt, snippet_type, channel_id,
        channels, thread_ts, initial_comment``. (Unlike Slack, sharing a file adds no message.)
        """
        with self._lock:
            return copy.deepcopy(self._files)

    @property
    def response_url_posts(self) -> list[dict[str, Any]]:
        """JSON posts to minted response URLs. Each: ``id, url, channel, message_ts, user_id, status,
        payload`` (the whole JSON) and its main keys flattened: ``text, blocks, response_type,
        replace_original, delete_original, thread_ts``."""
        with self._lock:
            return copy.deepcopy(self._response_posts)

    @property
    def views(self) -> list[dict[str, Any]]:
        """views.open / views.publish / views.update calls that succeeded: ``via, id, user_id,
        trigger_id, view``."""
        with self._lock:
            return copy.deepcopy(self._views)

    def assert_no_spec_violations(self) -> None:
        with self._lock:
            violations = list(self.spec_violations)
        assert not violations, "Slack spec violations:\n" + "\n".join(
            f"  {v.method}: {v.kind} {v.param!r} ({v.detail})" for v in violations
        )

    async def wait_for_calls(
        self,
        method: str,
        count: int = 1,
        *,
        timeout: float = 2.0,
        ok_only: bool = True,
    ) -> list[SlackCall]:
        """Wait until at least ``count`` (successful, unless ok_only=False) calls of ``method`` arrived.

        For work a bot does after its ack. Raises AssertionError listing what did arrive on timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls(method) if c.ok or not ok_only]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                seen = [(c.method, c.status, c.response.get("error")) for c in self.calls()]
                raise AssertionError(f"expected {count} {method} call(s) within {timeout}s; saw {seen}")
            await asyncio.sleep(0.01)

    def response_url(
        self,
        *,
        channel: str | None = DEFAULT_CHANNEL_ID,
        message_ts: str | None = None,
        user_id: str | None = None,
    ) -> str:
        """Mint a response_url for a payload (slash command: channel + user; block action: + message_ts).

        Posts to it are recorded; ``replace_original``/``delete_original`` act on ``message_ts`` (a
        channel message or an ephemeral), ``response_type="in_channel"`` posts into ``channel``, anything
        else becomes an ephemeral for ``user_id``.
        """
        rid = secrets.token_hex(8)
        with self._lock:
            self._response_urls[rid] = _ResponseUrl(rid, channel, message_ts, user_id)
        return f"{self.base_url.rstrip('/')}/response/{rid}"

    # ---------------------------------------------------------------- ids and ts

    def _next_ts(self) -> str:
        with self._lock:
            self._ts_seq += 1
            if self._ts_start is not None:
                candidate = round(self._ts_start * 1_000_000) + self._ts_seq * 100
            else:
                candidate = time.time_ns() // 1000
            candidate = max(candidate, self._last_ts_us + 1)
            self._last_ts_us = candidate
            return f"{candidate // 1_000_000}.{candidate % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._id_seq += 1
            return f"{prefix}0FAKE{self._id_seq:05d}"

    # ---------------------------------------------------------------- HTTP endpoints

    async def _read_params(self, request: Request) -> tuple[dict[str, Any], str | None, str | None]:
        """(params, token from params, parse error). Query, then the body, like Slack."""
        params: dict[str, Any] = dict(request.query_params)
        body_token: str | None = params.pop("token", None)
        if request.method != "POST":
            return params, body_token, None
        body = await request.body()
        ctype = request.headers.get("content-type", "")
        mime = ctype.split(";")[0].strip().lower()
        if not body:
            return params, body_token, None
        if mime in _JSON_TYPES:
            try:
                data = json.loads(body)
            except json.JSONDecodeError:
                return params, body_token, "invalid_json"
            if not isinstance(data, dict):
                return params, body_token, "json_not_object"
            data.pop("token", None)  # Slack ignores a token inside a JSON body: it wants the header
            params.update(data)
        elif mime == "multipart/form-data":
            fields, files = _parse_multipart(ctype, body)
            body_token = fields.pop("token", body_token)
            params.update(fields)
            params.update({k: {"filename": fn, "content": data} for k, (fn, data) in files.items()})
        else:
            fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            body_token = fields.pop("token", body_token)
            params.update(fields)
        return params, body_token, None

    async def _api_endpoint(self, request: Request) -> Response:
        method = request.path_params["method"]
        params, param_token, parse_error = await self._read_params(request)
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else param_token
        with self._lock:
            latency = self._latency.get(method, self._latency.get("*", 0.0))
        if latency:
            await asyncio.sleep(latency)
        status, body, headers = self._handle(method, params, token, parse_error, request)
        return JSONResponse(body, status_code=status, headers=headers)

    def _handle(
        self,
        method: str,
        params: dict[str, Any],
        token: str | None,
        parse_error: str | None,
        request: Request,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            call = SlackCall(
                method=method,
                params=copy.deepcopy(params),
                token=token,
                timestamp=time.time(),
                http_method=request.method,
            )
            self._calls.append(call)
            status, body, headers = self._answer(call, params, token, parse_error, request)
            call.status, call.response = status, copy.deepcopy(body)
            return status, body, headers

    def _answer(
        self,
        call: SlackCall,
        params: dict[str, Any],
        token: str | None,
        parse_error: str | None,
        request: Request,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        method = call.method
        handler = self._handlers.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        if method != "api.test":
            if not token:
                return 200, {"ok": False, "error": "not_authed"}, {}
            if token != (self.app_token if method == "apps.connections.open" else self.bot_token):
                return 200, {"ok": False, "error": "invalid_auth"}, {}
        limited = self._check_rate_limit(method)
        if limited is not None:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(limited)}
        failure = self._take_failure(method)
        if failure is not None:
            return failure.status, {"ok": False, "error": failure.error}, failure.headers
        if parse_error:
            return 200, {"ok": False, "error": parse_error}, {}
        violations = self._check_spec(method, params)
        if violations and self.strict:
            return 200, self._error_body("invalid_arguments", [v.detail for v in violations]), {}
        try:
            body = handler(params, request)
        except _SlackError as exc:
            detail = exc.extra.pop("detail", None)
            return 200, self._error_body(exc.error, [detail] if detail else [], **exc.extra), {}
        extra_headers = {"x-oauth-scopes": ",".join(self.scopes)} if method == "auth.test" else {}
        return 200, body, extra_headers

    @staticmethod
    def _error_body(error: str, messages: list[str], **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": error, **extra}
        if messages:
            body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in messages]}
        return body

    def _check_rate_limit(self, method: str) -> int | None:
        rl = self._rate_limits.get(method) or self._rate_limits.get("*")
        if rl is None:
            return None
        if rl.next_calls > 0:
            rl.next_calls -= 1
            return rl.retry_after
        if rl.per_second is not None:
            now = time.monotonic()
            while rl.window and now - rl.window[0] >= 1.0:
                rl.window.popleft()
            if len(rl.window) >= rl.per_second:
                return rl.retry_after
            rl.window.append(now)
        return None

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.count -= 1
        if failure.count <= 0:
            queue.popleft()
        return failure

    def _check_spec(self, method: str, params: dict[str, Any]) -> list[SpecViolation]:
        if self._spec is None or method not in self._spec:
            return []
        spec = self._spec[method]
        allowed = spec.known | POST_2020_PARAMS.get(method, frozenset()) | POST_2020_PARAMS["*"]
        found = [
            SpecViolation(method, "missing_required", name, f"{method}: required parameter {name!r} missing")
            for name in sorted(spec.required)
            if params.get(name) in (None, "")
        ]
        found += [
            SpecViolation(method, "unknown_param", name, f"{method}: parameter {name!r} is not in the spec")
            for name in sorted(params)
            if name not in allowed
        ]
        self.spec_violations.extend(found)
        return found

    async def _upload_endpoint(self, request: Request) -> Response:
        key = request.path_params["key"]
        body = await request.body()
        ctype = request.headers.get("content-type", "")
        if ctype.lower().startswith("multipart/form-data"):
            _fields, files = _parse_multipart(ctype, body)
            body = next(iter(files.values()))[1] if files else b""
        with self._lock:
            file_id = self._upload_keys.get(key)
            if file_id is None:
                return PlainTextResponse("Not Found", status_code=404)
            self._uploads[file_id].content = body
        return PlainTextResponse(f"OK - {len(body)}")

    async def _response_endpoint(self, request: Request) -> Response:
        rid = request.path_params["rid"]
        raw = await request.body()
        with self._lock:
            target = self._response_urls.get(rid)
            record: dict[str, Any] = {
                "id": rid,
                "url": str(request.url),
                "channel": target.channel if target else None,
                "message_ts": target.message_ts if target else None,
                "user_id": target.user_id if target else None,
                "status": 200,
                "payload": None,
            }
            self._response_posts.append(record)
            if target is None:
                record["status"] = 404
                return PlainTextResponse("no_service", status_code=404)
            try:
                payload = json.loads(raw)
                if not isinstance(payload, dict):
                    raise ValueError("not an object")
            except ValueError:
                record["status"] = 400
                return PlainTextResponse("invalid_payload", status_code=400)
            record["payload"] = copy.deepcopy(payload)
            for key in (
                "text",
                "blocks",
                "response_type",
                "replace_original",
                "delete_original",
                "thread_ts",
            ):
                record[key] = copy.deepcopy(payload.get(key))
            target.uses += 1
            self._apply_response(target, payload)
        return JSONResponse({"ok": True})

    def _apply_response(self, target: _ResponseUrl, payload: dict[str, Any]) -> None:
        blocks = payload.get("blocks")
        attachments = payload.get("attachments")
        if payload.get("delete_original") or payload.get("replace_original"):
            original = self._find_message(target.channel, target.message_ts)
            if original is not None:
                if payload.get("delete_original"):
                    original["deleted"] = True
                else:
                    self._edit(original, payload.get("text"), blocks, attachments, replace_all=True)
                return
            for eph in self._ephemerals:
                if target.message_ts and eph["ts"] == target.message_ts:
                    eph["replaced"].append({"text": payload.get("text"), "blocks": blocks})
                    if payload.get("replace_original"):
                        eph.update(text=payload.get("text") or "", blocks=blocks, attachments=attachments)
                    return
            return
        if payload.get("response_type") == "in_channel" and target.channel:
            cid = target.channel
            self._new_message(
                cid,
                text=payload.get("text") or "",
                blocks=blocks,
                attachments=attachments,
                thread_ts=payload.get("thread_ts"),
            )
            return
        self._ephemerals.append(
            {
                "channel": target.channel,
                "user": target.user_id,
                "ts": self._next_ts(),
                "text": payload.get("text") or "",
                "blocks": blocks,
                "attachments": attachments,
                "thread_ts": payload.get("thread_ts"),
                "via": "response_url",
                "replaced": [],
            }
        )

    # ---------------------------------------------------------------- state helpers

    def _resolve_channel(self, channel: Any, *, user_to_dm: bool = False) -> str:
        name = _s(channel)
        if name is None:
            raise _SlackError("channel_not_found")
        if user_to_dm and _USER_ID_RE.match(name):  # chat.postMessage to a user id posts into the DM
            dm = f"D{name[1:]:0>9}"
            if dm not in self._channels:
                self.add_channel(dm, dm.lower(), is_private=True)
                self._channels[dm]["user"] = name
            return dm
        if name in self._channels:
            return name
        bare = name.lstrip("#")
        for cid, info in self._channels.items():
            if info["name"] == bare:
                return cid
        if not self._known_channels_only and _CHANNEL_ID_RE.match(name):
            self.add_channel(name)
            return name
        raise _SlackError("channel_not_found")

    def _find_message(self, channel: str | None, ts: str | None) -> dict[str, Any] | None:
        if channel is None or ts is None:
            return None
        try:
            cid = self._resolve_channel(channel)
        except _SlackError:
            return None
        for msg in self._messages.get(cid, []):
            if msg["ts"] == ts:
                return msg
        return None

    def _new_message(
        self,
        channel_id: str,
        *,
        text: str,
        blocks: Any = None,
        attachments: Any = None,
        thread_ts: str | None = None,
        metadata: Any = None,
        ts: str | None = None,
    ) -> dict[str, Any]:
        msg = {
            "type": "message",
            "channel": channel_id,
            "ts": ts or self._next_ts(),
            "text": text,
            "blocks": blocks,
            "attachments": attachments,
            "thread_ts": thread_ts,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "metadata": metadata,
            "edited": None,
            "updates": 0,
            "history": [],
            "deleted": False,
        }
        msgs = self._messages.setdefault(channel_id, [])
        msgs.append(msg)
        msgs.sort(key=lambda m: m["ts"])
        return msg

    def _edit(
        self,
        msg: dict[str, Any],
        text: str | None,
        blocks: Any,
        attachments: Any,
        *,
        replace_all: bool = False,
        metadata: Any = None,
    ) -> None:
        msg["history"].append(
            {"text": msg["text"], "blocks": copy.deepcopy(msg["blocks"]), "attachments": msg["attachments"]}
        )
        if replace_all:  # a response_url replace: the new message replaces the old one entirely
            msg.update(text=text or "", blocks=blocks, attachments=attachments)
        else:  # chat.update: blocks/attachments are retained when absent (see the spec's descriptions)
            msg["text"] = text if text is not None else ""
            if blocks is not None:
                msg["blocks"] = blocks or None
            if attachments is not None:
                msg["attachments"] = attachments or None
            if metadata is not None:
                msg["metadata"] = metadata
        msg["updates"] += 1
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}

    @staticmethod
    def _message_payload(msg: dict[str, Any]) -> dict[str, Any]:
        """The ``message`` object Slack echoes (limited to keys the spec's objs_message knows)."""
        out = {k: msg[k] for k in ("type", "text", "user", "ts", "team") if msg.get(k) is not None}
        if msg.get("bot_id"):
            out["bot_id"] = msg["bot_id"]
        for key in ("blocks", "attachments", "thread_ts"):
            if msg.get(key):
                out[key] = copy.deepcopy(msg[key])
        return out

    def _content(self, params: dict[str, Any], *, require: bool = True) -> tuple[str | None, Any, Any]:
        text = _s(params.get("text"))
        if text is None:
            text = _s(params.get("markdown_text"))
        blocks = _json_param(params.get("blocks"), "invalid_blocks_format")
        attachments = _json_param(params.get("attachments"), "invalid_attachments")
        if blocks is not None:
            if not isinstance(blocks, list):
                raise _SlackError("invalid_blocks_format", detail="blocks must be a JSON array")
            errors = block_kit_errors(blocks)
            if errors:
                raise _SlackError("invalid_blocks", errors=errors, detail="; ".join(errors))
        if attachments is not None and not isinstance(attachments, list):
            raise _SlackError("invalid_attachments", detail="attachments must be a JSON array")
        if require and text is None and not blocks and not attachments:
            raise _SlackError("no_text")
        return text, blocks, attachments

    # ---------------------------------------------------------------- methods

    def _api_test(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        return {"ok": True, "args": {k: v for k, v in params.items() if isinstance(v, str)}}

    def _auth_test(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        cid = self._resolve_channel(params.get("channel"), user_to_dm=True)
        text, blocks, attachments = self._content(params)
        msg = self._new_message(
            cid,
            text=text or "",
            blocks=blocks,
            attachments=attachments,
            thread_ts=_s(params.get("thread_ts")),
            metadata=_json_param(params.get("metadata"), "invalid_metadata_format"),
        )
        return {"ok": True, "channel": cid, "ts": msg["ts"], "message": self._message_payload(msg)}

    def _chat_update(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        cid = self._resolve_channel(params.get("channel"))
        ts = _s(params.get("ts"))
        if ts is None:
            raise _SlackError("invalid_arguments", detail="ts is required")
        msg = self._find_message(cid, ts)
        if msg is None or msg["deleted"]:
            raise _SlackError("message_not_found")
        if msg["bot_id"] != self.bot_id:
            raise _SlackError("cant_update_message")
        text, blocks, attachments = self._content(params)
        metadata = _json_param(params.get("metadata"), "invalid_metadata_format")
        self._edit(msg, text, blocks, attachments, metadata=metadata)
        return {
            "ok": True,
            "channel": cid,
            "ts": ts,
            "text": msg["text"],
            "message": self._message_payload(msg),
        }

    def _chat_delete(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        cid = self._resolve_channel(params.get("channel"))
        ts = _s(params.get("ts"))
        msg = self._find_message(cid, ts)
        if msg is None or msg["deleted"]:
            raise _SlackError("message_not_found")
        if msg["bot_id"] != self.bot_id:
            raise _SlackError("cant_delete_message")
        msg["deleted"] = True
        return {"ok": True, "channel": cid, "ts": ts}

    def _chat_post_ephemeral(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        cid = self._resolve_channel(params.get("channel"))
        user = _s(params.get("user"))
        if user is None:
            raise _SlackError("user_not_found", detail="user is required")
        text, blocks, attachments = self._content(params)
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": cid,
                "user": user,
                "ts": ts,
                "text": text or "",
                "blocks": blocks,
                "attachments": attachments,
                "thread_ts": _s(params.get("thread_ts")),
                "via": "chat.postEphemeral",
                "replaced": [],
            }
        )
        return {"ok": True, "message_ts": ts}

    def _chat_get_permalink(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        cid = self._resolve_channel(params.get("channel"))
        ts = _s(params.get("message_ts"))
        if self._find_message(cid, ts) is None or ts is None:
            raise _SlackError("message_not_found")
        permalink = f"https://{self.team_domain}.slack.com/archives/{cid}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": cid, "permalink": permalink}

    def _conversations_info(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        cid = self._resolve_channel(params.get("channel"))
        info = self._channels[cid]
        channel: dict[str, Any] = {
            "id": cid,
            "name": info["name"],
            "name_normalized": info["name"],
            "created": info["created"],
            "creator": self.bot_user_id,
            "is_archived": False,
            "is_channel": cid.startswith("C"),
            "is_group": cid.startswith("G"),
            "is_im": info["is_im"],
            "is_mpim": False,
            "is_private": info["is_private"],
            "is_general": False,
            "is_shared": False,
            "is_org_shared": False,
            "is_ext_shared": False,
            "is_member": info["is_member"],
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }
        if info.get("user"):
            channel["user"] = info["user"]
        return {"ok": True, "channel": channel}

    def _usergroups_users_list(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        gid = _s(params.get("usergroup"))
        if gid is None:
            raise _SlackError("invalid_arguments", detail="usergroup is required")
        if gid not in self._usergroups:
            raise _SlackError("no_such_subteam")
        return {"ok": True, "users": list(self._usergroups[gid])}

    def _users_info(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        uid = _s(params.get("user"))
        if uid is None or uid not in self._users:
            raise _SlackError("user_not_found")
        return {"ok": True, "user": copy.deepcopy(self._users[uid])}

    def _files_get_upload_url_external(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        filename = _s(params.get("filename"))
        length_raw = _s(params.get("length"))
        if filename is None or length_raw is None:
            raise _SlackError("invalid_arguments", detail="filename and length are required")
        try:
            length = int(length_raw)
        except ValueError:
            raise _SlackError("invalid_arguments", detail="length must be an integer") from None
        if length < 0:
            raise _SlackError("invalid_arguments", detail="length must not be negative")
        file_id = self._next_id("F")
        key = secrets.token_urlsafe(12)
        self._uploads[file_id] = _Upload(
            file_id=file_id,
            key=key,
            filename=filename,
            length=length,
            alt_txt=_s(params.get("alt_txt")),
            snippet_type=_s(params.get("snippet_type")),
        )
        self._upload_keys[key] = file_id
        base = str(request.base_url).rstrip("/")
        return {"ok": True, "upload_url": f"{base}/upload/v1/{key}", "file_id": file_id}

    def _files_complete_upload_external(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        files = _json_param(params.get("files"), "invalid_arguments")
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
            raise _SlackError("invalid_arguments", detail="files must be a JSON array of {id, title}")
        channel_id = _s(params.get("channel_id"))
        cid = self._resolve_channel(channel_id) if channel_id else None
        channels_raw = _s(params.get("channels"))
        channels = [self._resolve_channel(c) for c in channels_raw.split(",")] if channels_raw else []
        uploads = []
        for f in files:
            upload = self._uploads.get(str(f.get("id")))
            if upload is None or upload.completed:
                detail = f"unknown or already completed file {f.get('id')!r}"
                raise _SlackError("file_not_found", detail=detail)
            if upload.content is None:
                raise _SlackError("file_not_found", detail=f"no bytes were uploaded for {upload.file_id}")
            uploads.append((upload, f))
        out = []
        for upload, f in uploads:
            upload.completed = True
            title = _s(f.get("title")) or upload.filename
            self._files.append(
                {
                    "id": upload.file_id,
                    "filename": upload.filename,
                    "title": title,
                    "length": upload.length,
                    "content": upload.content,
                    "alt_txt": upload.alt_txt,
                    "snippet_type": upload.snippet_type,
                    "channel_id": cid,
                    "channels": channels,
                    "thread_ts": _s(params.get("thread_ts")),
                    "initial_comment": _s(params.get("initial_comment")),
                }
            )
            out.append({"id": upload.file_id, "title": title})
        return {"ok": True, "files": out}

    def _view_record(self, via: str, view: Any, **extra: Any) -> dict[str, Any]:
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            raise _SlackError("invalid_arguments", detail="view must be a JSON object with type modal|home")
        errors = block_kit_errors(view.get("blocks", []), max_blocks=100)
        if errors:
            raise _SlackError("invalid_arguments", errors=errors, detail="; ".join(errors))
        view_id = extra.pop("view_id", None) or self._next_id("V")
        self._views.append({"via": via, "id": view_id, "view": copy.deepcopy(view), **extra})
        return {
            "ok": True,
            "view": {**copy.deepcopy(view), "id": view_id, "team_id": self.team_id, "app_id": self.app_id},
        }

    def _views_open(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        trigger_id = _s(params.get("trigger_id")) or _s(params.get("interactivity_pointer"))
        if trigger_id is None:
            raise _SlackError("invalid_arguments", detail="trigger_id is required")
        view = _json_param(params.get("view"), "invalid_arguments")
        return self._view_record("views.open", view, trigger_id=trigger_id, user_id=None)

    def _views_publish(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        user_id = _s(params.get("user_id"))
        if user_id is None:
            raise _SlackError("invalid_arguments", detail="user_id is required")
        view = _json_param(params.get("view"), "invalid_arguments")
        return self._view_record("views.publish", view, user_id=user_id, trigger_id=None)

    def _views_update(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        view_id = _s(params.get("view_id")) or _s(params.get("external_id"))
        known = {v["id"] for v in self._views}
        if view_id is None or (_s(params.get("view_id")) and view_id not in known):
            raise _SlackError("not_found")
        view = _json_param(params.get("view"), "invalid_arguments")
        return self._view_record("views.update", view, view_id=view_id, user_id=None, trigger_id=None)


# --------------------------------------------------------------------------------------------------
# serving over a real socket


@contextlib.contextmanager
def serve_in_thread(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` (any ASGI app) with uvicorn on ``host`` in a daemon thread; yield its base URL.

    ``port=0`` picks a free port. The URL ends with ``/`` (``http://127.0.0.1:PORT/``). If the app has
    a ``base_url`` attribute (FakeSlack does) it is set to that URL for the duration, so minted
    response URLs point at the socket.
    """
    import uvicorn  # imported here: in-process users of the fake need no server

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    url = f"http://{host}:{sock.getsockname()[1]}/"
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surface start-up failures in the caller's thread
            errors.append(exc)

    previous = getattr(app, "base_url", None)
    if previous is not None:
        app.base_url = url
    thread = threading.Thread(target=run, name=f"uvicorn-{url}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if errors or not thread.is_alive():
                raise RuntimeError(f"uvicorn failed to start for {url}: {errors[:1]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within 10 s for {url}")
            time.sleep(0.005)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        if previous is not None:
            app.base_url = previous
