"""Zendesk Support: triggers and automations (toggle or exempt) and SLA policies (exempt only).

Zendesk replaces a rule's conditions and actions as a whole on PUT, so `write` always sends the
complete object. SLA policies have no on/off flag: the only pause is a filter condition that skips
tickets carrying the import tag.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Generator, Mapping
from dataclasses import replace
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx

from adapters.base import (
    Action,
    Automation,
    AutomationGone,
    Capability,
    EditNotPossible,
    KindInfo,
    PlatformError,
    with_exemption,
    without_exemption,
)
from adapters.http import HttpTarget, error_message

TOGGLE_EXEMPT = frozenset({Capability.TOGGLE, Capability.EXEMPT})
KINDS: Mapping[str, KindInfo] = {
    "trigger": KindInfo("trigger", "Trigger", TOGGLE_EXEMPT),
    "automation": KindInfo("automation", "Automation", TOGGLE_EXEMPT),
    "sla_policy": KindInfo("sla_policy", "SLA policy", frozenset({Capability.EXEMPT})),
}
API_PATHS = {"trigger": "triggers", "automation": "automations", "sla_policy": "slas/policies"}
LIST_KEYS = {"trigger": "triggers", "automation": "automations", "sla_policy": "sla_policies"}
# Admin Center pages. The SLA page is the list: its per-policy editor path is not documented.
ADMIN_PATHS = {
    "trigger": "/admin/objects-rules/rules/triggers/{id}",
    "automation": "/admin/objects-rules/rules/automations/{id}",
    "sla_policy": "/admin/objects-rules/rules/slas",
}
VOLATILE = frozenset({"created_at", "updated_at", "url"})
RULE_WRITE_FIELDS = ("description", "position", "category_id")
SLA_WRITE_FIELDS = ("title", "description", "position", "filter", "policy_metrics")
PAGE_SIZE = 100
MAX_PAGES = 10_000  # a guard against a server that always answers has_more
SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


class _Secret(Protocol):
    def get_secret_value(self) -> str: ...


def zendesk_base_url(subdomain: str | None, url: str | None) -> str:
    """The API base URL: `url` when set (sandboxes, proxies, tests), else https://SUB.zendesk.com."""
    if url and url.strip():
        url = url.strip().rstrip("/")
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ValueError(f"ZENDESK_URL must be an http(s) URL, got {url!r}")
        return url
    if subdomain and subdomain.strip():
        name = subdomain.strip().lower().removeprefix("https://").removesuffix("/")
        name = name.removesuffix(".zendesk.com")
        if not SUBDOMAIN.match(name):
            raise ValueError(f"ZENDESK_SUBDOMAIN must be the account name (e.g. 'acme'), got {subdomain!r}")
        return f"https://{name}.zendesk.com"
    raise ValueError("Zendesk needs ZENDESK_SUBDOMAIN or ZENDESK_URL")


class BearerAuth(httpx.Auth):
    """OAuth access token as `Authorization: Bearer`; its repr never shows the token."""

    def __init__(self, token: str):
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def zendesk_auth(
    email: str | None, api_token: str | _Secret | None, oauth_token: str | _Secret | None
) -> httpx.Auth | tuple[str, str]:
    """Basic `email/token:API_TOKEN`, or Bearer when an OAuth token is given (it wins).
    Accepts plain strings or pydantic SecretStr values."""
    oauth = _reveal(oauth_token)
    if oauth:
        return BearerAuth(oauth)
    token = _reveal(api_token)
    if email and email.strip() and token:
        return (f"{email.strip()}/token", token)
    if token:
        raise ValueError("ZENDESK_EMAIL is required with ZENDESK_API_TOKEN")
    if email:
        raise ValueError("ZENDESK_API_TOKEN (or ZENDESK_OAUTH_TOKEN) is required with ZENDESK_EMAIL")
    raise ValueError("Zendesk needs ZENDESK_EMAIL and ZENDESK_API_TOKEN, or ZENDESK_OAUTH_TOKEN")


def _reveal(value: str | _Secret | None) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else value.get_secret_value()
    return text.strip() or None


class ZendeskPlatform:
    """One Zendesk account. `http` carries the authenticated client (base URL = the account's API
    host); `web_url` is where agents open Admin Center (defaults to the client's base URL)."""

    name = "zendesk"
    display_name = "Zendesk"
    kinds: Mapping[str, KindInfo] = KINDS

    def __init__(self, http: HttpTarget, web_url: str | None = None):
        self.http = http
        self.web_url = (web_url or str(http.client.base_url)).rstrip("/")

    # ---- reads -----------------------------------------------------------------------------

    async def list_automations(self) -> list[Automation]:
        """All three kinds at once (pages within a kind follow each other); the first failure
        cancels the other reads and propagates as itself, not wrapped in an ExceptionGroup."""
        tasks = [asyncio.ensure_future(self._list_kind(kind)) for kind in KINDS]
        try:
            per_kind = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        return [automation for found in per_kind for automation in found]

    async def get_automation(self, kind: str, automation_id: str) -> Automation:
        _check_kind(kind)
        response = await self.http.request("GET", _member_path(kind, automation_id))
        return self._parse_single(kind, automation_id, response)

    async def _list_kind(self, kind: str) -> list[Automation]:
        """Every object of one kind, page by page. The next page is asked for with the cursor
        (on our own base URL) rather than by following `links.next`, so the credentials never
        go to a host the answer names."""
        path = f"/api/v2/{API_PATHS[kind]}.json"
        params: dict[str, Any] = {"page[size]": PAGE_SIZE}
        found: list[Automation] = []
        for _ in range(MAX_PAGES):
            response = await self.http.request("GET", path, params=params)
            body = self._ok_json(response, f"listing {KINDS[kind].label}s")
            found.extend(self._parse(kind, obj) for obj in body.get(LIST_KEYS[kind]) or [])
            cursor = _next_cursor(body)
            if cursor is None:
                return found
            params = {"page[size]": PAGE_SIZE, "page[after]": cursor}
        raise PlatformError(f"Zendesk kept answering more {KINDS[kind].label}s after {MAX_PAGES} pages")

    # ---- pure planning ---------------------------------------------------------------------

    def edit(self, automation: Automation, action: Action, tag: str) -> Automation:
        return edit_rule(automation, action, tag)

    # ---- writes ----------------------------------------------------------------------------

    async def write(self, desired: Automation) -> Automation:
        _check_kind(desired.kind)
        body = {desired.kind: _write_body(desired)}
        response = await self.http.request("PUT", _member_path(desired.kind, desired.id), json=body)
        return self._parse_single(desired.kind, desired.id, response)

    async def aclose(self) -> None:
        await self.http.client.aclose()

    # ---- parsing ---------------------------------------------------------------------------

    def _parse_single(self, kind: str, automation_id: str, response: httpx.Response) -> Automation:
        label = KINDS[kind].label
        if response.status_code == 404:
            raise AutomationGone(f"Zendesk {label} {automation_id} no longer exists", status=404)
        body = self._ok_json(response, f"{label} {automation_id}")
        obj = body.get(kind)
        if not isinstance(obj, dict):
            raise PlatformError(f"Zendesk answered {label} {automation_id} without a {kind!r} object")
        return self._parse(kind, obj)

    def _ok_json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code >= 400:
            raise PlatformError(
                f"Zendesk refused {what}: {_refusal(response)}",
                status=response.status_code,
                code=_error_code(response),
            )
        try:
            body = response.json()
        except ValueError as error:
            raise PlatformError(f"Zendesk answered {what} with something other than JSON") from error
        if not isinstance(body, dict):
            raise PlatformError(f"Zendesk answered {what} with unexpected JSON")
        return body

    def _parse(self, kind: str, obj: dict[str, Any]) -> Automation:
        automation_id = str(obj["id"])
        definition = {
            k: copy.deepcopy(v) for k, v in obj.items() if k not in VOLATILE and not k.startswith("usage_")
        }
        return Automation(
            kind=kind,
            id=automation_id,
            name=str(obj.get("title") or obj.get("raw_title") or automation_id),
            enabled=None if kind == "sla_policy" else bool(obj.get("active")),
            definition=definition,
            updated_at=obj.get("updated_at"),
            url=self.web_url + ADMIN_PATHS[kind].format(id=automation_id),
        )


def edit_rule(automation: Automation, action: Action, tag: str) -> Automation:
    """Pure: a Zendesk-shaped automation after `action` (also used by the sandbox platform).
    DISABLE/ENABLE flip `active`; EXEMPT/UNEXEMPT add or remove our tag condition in
    `conditions.all` (`filter.all` for SLA policies, which cannot be toggled)."""
    info = KINDS.get(automation.kind)
    if info is None:
        raise EditNotPossible(f"Zendesk has no automation kind {automation.kind!r}")
    if action in (Action.DISABLE, Action.ENABLE):
        if Capability.TOGGLE not in info.capabilities:
            raise EditNotPossible(f"a Zendesk {info.label} has no on/off switch; exempt it instead")
        enabled = action is Action.ENABLE
        definition = {**copy.deepcopy(automation.definition), "active": enabled}
        return replace(automation, enabled=enabled, definition=definition)
    if action in (Action.EXEMPT, Action.UNEXEMPT):
        return _with_conditions(automation, action, _check_tag(tag))
    raise EditNotPossible(f"{action.value} is done by a person, not through the Zendesk API")


def _with_conditions(automation: Automation, action: Action, tag: str) -> Automation:
    key = _conditions_key(automation.kind)
    definition = copy.deepcopy(automation.definition)
    block = dict(definition.get(key) or {})
    current = list(block.get("all") or [])
    block["all"] = (
        with_exemption(current, tag) if action is Action.EXEMPT else without_exemption(current, tag)
    )
    definition[key] = block
    return replace(automation, definition=definition)


def _write_body(desired: Automation) -> dict[str, Any]:
    """The complete object, as Zendesk's full-replace PUT needs it."""
    definition = desired.definition
    if desired.kind == "sla_policy":
        body = {key: copy.deepcopy(definition[key]) for key in SLA_WRITE_FIELDS if key in definition}
        body["filter"] = _both_groups(definition.get("filter"))
        body.setdefault("policy_metrics", [])
        return body
    active = definition.get("active", desired.enabled)
    body = {
        # raw_title keeps a dynamic-content placeholder ({{dc.x}}) that `title` shows rendered
        "title": definition.get("raw_title") or definition.get("title") or desired.name,
        "active": bool(active),
        "conditions": _both_groups(definition.get("conditions")),
        "actions": copy.deepcopy(definition.get("actions") or []),
    }
    for key in RULE_WRITE_FIELDS:
        if definition.get(key) is not None or (key == "description" and key in definition):
            body[key] = copy.deepcopy(definition[key])
    return body


def _both_groups(block: Any) -> dict[str, list[Any]]:
    block = block if isinstance(block, dict) else {}
    return {"all": copy.deepcopy(block.get("all") or []), "any": copy.deepcopy(block.get("any") or [])}


def _next_cursor(body: dict[str, Any]) -> str | None:
    """The `page[after]` of the next page, from `meta` or else from `links.next`."""
    meta = body.get("meta") or {}
    if not meta.get("has_more"):
        return None
    if meta.get("after_cursor"):
        return str(meta["after_cursor"])
    next_link = (body.get("links") or {}).get("next")
    values = parse_qs(urlsplit(next_link).query).get("page[after]") if next_link else None
    if not values:
        raise PlatformError("Zendesk said there are more pages but gave no cursor")
    return values[0]


def _refusal(response: httpx.Response) -> str:
    """`error_message`, plus Zendesk's validation details (its description is only
    "Record validation errors"; the reason is in `details`)."""
    message = error_message(response)
    try:
        details = response.json().get("details")
    except (ValueError, AttributeError):
        return message
    if not isinstance(details, dict):
        return message
    reasons = [
        str(item.get("description"))
        for items in details.values()
        if isinstance(items, list)
        for item in items
        if isinstance(item, dict) and item.get("description")
    ]
    return f"{message} ({'; '.join(reasons)[:300]})" if reasons else message


def _error_code(response: httpx.Response) -> str | None:
    try:
        code = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) else None


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise PlatformError(f"Zendesk has no automation kind {kind!r}")


def _check_tag(tag: str) -> str:
    """Zendesk tags are single words: a space would make the condition test two tags."""
    if not tag or any(ch.isspace() for ch in tag):
        raise EditNotPossible(f"the import tag must be one word without spaces, got {tag!r}")
    return tag


def _conditions_key(kind: str) -> str:
    return "filter" if kind == "sla_policy" else "conditions"


def _member_path(kind: str, automation_id: str) -> str:
    if not str(automation_id).isdigit():
        raise PlatformError(f"Zendesk ids are numbers, got {automation_id!r}")
    return f"/api/v2/{API_PATHS[kind]}/{automation_id}.json"
