"""A stateful fake of the Zendesk Support business-rules API (triggers, automations, SLA policies).

An ASGI app: serve it in-process with `httpx.ASGITransport(app=fake)` or over a socket with
`serve_in_thread(fake)` / `python -m tests.fakes.zendesk --port N`. State lives in memory.

Stricter than Zendesk on purpose where Zendesk silently loses data: a trigger/automation PUT that
sends conditions without actions (or the reverse) is refused instead of wiping the other array.

Rate limiting: a sliding window (`rate_window` seconds, 60 by default) holding at most `rate_limit`
accepted requests. A refused request does not enter the window; its `Retry-After` is the whole
seconds until the oldest request in the window leaves it (at least 1). Every answer carries
`X-Rate-Limit` (= `rate_limit`) and `X-Rate-Limit-Remaining`; list answers add `ratelimit-limit`,
`ratelimit-remaining` and `ratelimit-reset`, as Zendesk's list endpoints do.

Order of checks per request: record the call, sleep (`latency` + `slow`), authenticate (401),
forced failures (`fail_next`), random 5xx (`error_rate`), random 429 (`throttle_rate`), the window.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import json
import math
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KINDS = ("trigger", "automation", "sla_policy")
COLLECTIONS = {"triggers": "trigger", "automations": "automation", "slas/policies": "sla_policy"}
PATHS = {kind: path for path, kind in COLLECTIONS.items()}
PLURAL = {"trigger": "triggers", "automation": "automations", "sla_policy": "sla_policies"}
PATH_RE = re.compile(r"^/api/v2/(triggers|automations|slas/policies)(?:/([^/]+?))?(?:\.json)?/?$")

OPERATORS = frozenset(
    {
        "is",
        "is_not",
        "less_than",
        "less_than_equal",
        "greater_than",
        "greater_than_equal",
        "changed",
        "value",
        "value_previous",
        "not_changed",
        "not_value",
        "not_value_previous",
        "includes",
        "not_includes",
        "within_previous_n",
        "not_within_previous_n",
        "is_business_hours",
        "is_not_business_hours",
        "present",
        "not_present",
    }
)
RULE_FIELDS = frozenset({"title", "active", "position", "description", "conditions", "actions"})
QUICK_FIELDS = frozenset({"active", "title", "position"})  # a PUT of only these may omit conditions+actions
SLA_FIELDS = frozenset({"title", "description", "position", "filter", "policy_metrics"})
READ_ONLY = frozenset({"id", "url", "created_at", "updated_at", "default", "raw_title"})
SLA_METRICS = (
    "first_reply_time",
    "next_reply_time",
    "periodic_update_time",
    "requester_wait_time",
    "agent_work_time",
    "pausable_update_time",
)
PRIORITIES = ("low", "normal", "high", "urgent")
FIRST_ID = 360_000_000_001
DC_RE = re.compile(r"\{\{\s*dc\.([A-Za-z0-9_]+)\s*\}\}")


class Invalid(Exception):
    """A request body Zendesk would refuse with 422 RecordInvalid."""

    def __init__(self, field: str, description: str):
        super().__init__(description)
        self.field = field
        self.description = description


@dataclass
class FakeClock:
    """A clock tests can move: pass `now` as the fake's `clock` and `sleep` as HttpTarget's sleep,
    so a 60-second rate-limit window passes instantly."""

    now_value: float = 0.0
    slept: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.now_value

    async def sleep(self, seconds: float) -> None:
        self.now_value += seconds
        self.slept.append(seconds)
        await asyncio.sleep(0)


class FakeZendesk:
    """The fake account. Knobs are plain attributes; tests may change them at any time."""

    def __init__(
        self,
        *,
        email: str = "agent@example.com",
        api_token: str = "test-api-token",
        oauth_token: str | None = "test-oauth-token",
        rate_limit: int | None = 700,
        rate_window: float = 60.0,
        error_rate: float = 0.0,
        throttle_rate: float = 0.0,
        latency: float = 0.0,
        slow: float = 0.0,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.email = email
        self.api_token = api_token
        self.oauth_token = oauth_token
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.error_rate = error_rate  # probability of a random 500 or 503
        self.throttle_rate = throttle_rate  # probability of a random 429 (Retry-After: 1)
        self.latency = latency  # seconds added to every answer
        self.slow = slow  # more seconds added to every answer: an overloaded account, client timeouts
        self.random = random.Random(seed)
        self.clock = clock
        self.wall_clock = wall_clock
        self.objects: dict[str, dict[int, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.writes: dict[tuple[str, int], int] = {}  # API writes (PUT/POST) per object
        self.calls: list[tuple[str, str]] = []
        self.request_count = 0
        self.throttled_count = 0  # 429s sent, for whatever reason
        self.errors_sent = 0  # injected 5xx answers
        self._forced: deque[tuple[int, frozenset[str] | None]] = deque()
        self._window: deque[float] = deque()
        self.dynamic_content: dict[str, str] = {}  # {{dc.NAME}} placeholders rendered in rule titles
        self._next_id = FIRST_ID
        self._last_stamp = 0
        self._lock = threading.RLock()
        self.app = Starlette(
            routes=[
                Route("/_fake/state", self._state_endpoint, methods=["GET"]),
                Route("/{path:path}", self._endpoint, methods=["GET", "PUT", "POST", "DELETE", "PATCH"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    # ---- knobs -----------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503, methods: set[str] | None = None) -> None:
        """Answer the next `count` matching requests (all methods by default) with `status`."""
        wanted = frozenset(m.upper() for m in methods) if methods else None
        with self._lock:
            self._forced.extend((status, wanted) for _ in range(count))

    # ---- state helpers for tests -----------------------------------------------------------

    def seed(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Create one object directly in the fake's state (no request, no write count)."""
        with self._lock:
            obj = self._new_object(kind, fields)
            self.objects[kind][obj["id"]] = obj
            return copy.deepcopy(obj)

    def get(self, kind: str, object_id: int | str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.objects[kind][int(object_id)])

    def all(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(obj) for obj in self._sorted(kind)]

    def edit_as_person(
        self,
        kind: str,
        object_id: int | str,
        change: Callable[[dict[str, Any]], None] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Change an object the way an admin in the UI would: set `fields` and/or run `change` on
        the stored object, then bump `updated_at`. Not counted in `writes` (those are API writes)."""
        with self._lock:
            obj = self.objects[kind][int(object_id)]
            obj.update(copy.deepcopy(fields))
            if "title" in fields and kind != "sla_policy":
                obj["raw_title"], obj["title"] = fields["title"], self._dc(fields["title"])
            if change is not None:
                change(obj)
            obj["updated_at"] = self._stamp()
            return copy.deepcopy(obj)

    def delete(self, kind: str, object_id: int | str) -> None:
        with self._lock:
            del self.objects[kind][int(object_id)]

    def write_count(self, kind: str, object_id: int | str) -> int:
        with self._lock:
            return self.writes.get((kind, int(object_id)), 0)

    def total_writes(self) -> int:
        with self._lock:
            return sum(self.writes.values())

    def reset_counters(self) -> None:
        with self._lock:
            self.writes.clear()
            self.calls.clear()
            self.request_count = self.throttled_count = self.errors_sent = 0

    def seed_random(self, n: int, seed: int = 0) -> list[tuple[str, int]]:
        """Add `n` realistic objects: ~60% triggers, ~30% automations, ~10% SLA policies; about a
        quarter of the rules inactive; varied conditions, including some already tag-based."""
        rng = random.Random(seed)
        created = []
        for index in range(n):
            roll = rng.random()
            kind = "trigger" if roll < 0.6 else "automation" if roll < 0.9 else "sla_policy"
            obj = self.seed(kind, **_random_fields(kind, rng, index))
            created.append((kind, obj["id"]))
        return created

    # ---- the ASGI side ---------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        with self._lock:
            self.request_count += 1
            self.calls.append((request.method, request.url.path))
        delay = self.latency + self.slow
        if delay > 0:
            await asyncio.sleep(delay)
        response = self._refusal(request)
        if response is None:
            response = await self._route(request)
        self._rate_headers(response)
        return response

    async def _state_endpoint(self, request: Request) -> Response:
        """Counters and objects for a test in another process (not a Zendesk endpoint, no auth)."""
        with self._lock:
            body = {
                "request_count": self.request_count,
                "throttled_count": self.throttled_count,
                "writes": {f"{kind}/{oid}": count for (kind, oid), count in self.writes.items()},
                "objects": {
                    kind: [self._render(kind, o, request) for o in self._sorted(kind)] for kind in KINDS
                },
            }
        return JSONResponse(body)

    def _refusal(self, request: Request) -> Response | None:
        """Authentication, injected faults and the rate limit, in that order."""
        if not self._authenticated(request.headers.get("authorization", "")):
            return JSONResponse({"error": "Couldn't authenticate you"}, status_code=401)
        with self._lock:
            forced = self._take_forced(request.method)
            if forced is not None:
                return self._fault(forced)
            if self.error_rate and self.random.random() < self.error_rate:
                return self._fault(self.random.choice((500, 503)))
            if self.throttle_rate and self.random.random() < self.throttle_rate:
                return self._throttled(1)
            wait = self._admit()
            if wait is not None:
                return self._throttled(wait)
        return None

    def _authenticated(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return self.oauth_token is not None and value.strip() == self.oauth_token
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except ValueError:
            return False
        return decoded == f"{self.email}/token:{self.api_token}"

    def _take_forced(self, method: str) -> int | None:
        for index, (status, methods) in enumerate(self._forced):
            if methods is None or method.upper() in methods:
                del self._forced[index]
                return status
        return None

    def _fault(self, status: int) -> Response:
        self.errors_sent += 1
        if status == 429:
            return self._throttled(1)
        names = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable"}
        error = names.get(status, "Error")
        return JSONResponse({"error": error, "description": "Injected failure"}, status_code=status)

    def _throttled(self, wait: int) -> Response:
        self.throttled_count += 1
        body = {
            "error": "APIRateLimitExceeded",
            "description": "Number of allowed API requests per minute exceeded",
        }
        return JSONResponse(body, status_code=429, headers={"Retry-After": str(max(1, wait))})

    def _admit(self) -> int | None:
        """Enter the sliding window, or return the whole seconds to wait before trying again."""
        if self.rate_limit is None:
            return None
        now = self.clock()
        while self._window and self._window[0] <= now - self.rate_window:
            self._window.popleft()
        if len(self._window) < self.rate_limit:
            self._window.append(now)
            return None
        return max(1, math.ceil(self._window[0] + self.rate_window - now))

    def _rate_headers(self, response: Response) -> None:
        limit = self.rate_limit if self.rate_limit is not None else 1_000_000
        with self._lock:
            remaining = max(0, limit - len(self._window))
            reset = (
                max(1, math.ceil(self._window[0] + self.rate_window - self.clock())) if self._window else 0
            )
        response.headers["X-Rate-Limit"] = str(limit)
        response.headers["X-Rate-Limit-Remaining"] = str(remaining)
        if response.status_code in (200, 429):
            response.headers["ratelimit-limit"] = str(limit)
            response.headers["ratelimit-remaining"] = str(remaining)
            response.headers["ratelimit-reset"] = str(reset)

    async def _route(self, request: Request) -> Response:
        match = PATH_RE.match(request.url.path)
        if match is None:
            return _error(404, "InvalidEndpoint", "Not found")
        kind = COLLECTIONS[match.group(1)]
        raw_id = match.group(2)
        if raw_id is None:
            return await self._collection(request, kind)
        if not raw_id.isdigit():
            return _error(404, "RecordNotFound", "Not found")
        return await self._member(request, kind, int(raw_id))

    async def _collection(self, request: Request, kind: str) -> Response:
        if request.method == "GET":
            return self._list(request, kind)
        if request.method == "POST":
            return await self._create(request, kind)
        return _error(405, "MethodNotAllowed", f"{request.method} is not allowed here")

    async def _member(self, request: Request, kind: str, object_id: int) -> Response:
        with self._lock:
            exists = object_id in self.objects[kind]
        if not exists:
            return _error(404, "RecordNotFound", "Not found")
        if request.method == "GET":
            with self._lock:
                return JSONResponse({kind: self._render(kind, self.objects[kind][object_id], request)})
        if request.method == "PUT":
            return await self._update(request, kind, object_id)
        if request.method == "DELETE":
            with self._lock:
                self.objects[kind].pop(object_id, None)
            return Response(status_code=204)
        return _error(405, "MethodNotAllowed", f"{request.method} is not allowed here")

    # ---- list with cursor pagination -------------------------------------------------------

    def _list(self, request: Request, kind: str) -> Response:
        query = request.query_params
        try:
            size = _page_size(query.get("page[size]"))
            after = _decode_cursor(query.get("page[after]"))
            before = _decode_cursor(query.get("page[before]"))
        except ValueError as error:
            return _error(400, "InvalidPaginationParameter", str(error))
        with self._lock:
            items = [o for o in self._sorted(kind) if _active_filter(o, query.get("active"))]
            page, has_more = _slice(items, size, after, before)
            rendered = [self._render(kind, o, request) for o in page]
        first = _encode_cursor(page[0]) if page else None
        last = _encode_cursor(page[-1]) if page else None
        url = f"{str(request.base_url).rstrip('/')}{request.url.path}"
        body = {
            PLURAL[kind]: rendered,
            "meta": {"has_more": has_more, "after_cursor": last, "before_cursor": first},
            "links": {
                "next": _link(url, query, size, "page[after]", last) if has_more and last else None,
                "prev": _link(url, query, size, "page[before]", first) if first else None,
            },
        }
        return JSONResponse(body)

    def _sorted(self, kind: str) -> list[dict[str, Any]]:
        return sorted(self.objects[kind].values(), key=_sort_key)

    # ---- writes ----------------------------------------------------------------------------

    async def _create(self, request: Request, kind: str) -> Response:
        try:
            payload = await _payload(request, kind)
            _validate(kind, payload, create=True)
        except Invalid as error:
            return _invalid(error)
        except ValueError as error:
            return _error(400, "InvalidJSON", str(error))
        with self._lock:
            obj = self._new_object(kind, _writable(kind, payload))
            self.objects[kind][obj["id"]] = obj
            self.writes[(kind, obj["id"])] = 1
            return JSONResponse({kind: self._render(kind, obj, request)}, status_code=201)

    async def _update(self, request: Request, kind: str, object_id: int) -> Response:
        try:
            payload = await _payload(request, kind)
            _validate(kind, payload, create=False)
        except Invalid as error:
            return _invalid(error)
        except ValueError as error:
            return _error(400, "InvalidJSON", str(error))
        with self._lock:
            obj = self.objects[kind].get(object_id)
            if obj is None:  # deleted while the body was read
                return _error(404, "RecordNotFound", "Not found")
            changes = _writable(kind, payload)
            obj.update(changes)
            if "title" in changes and kind != "sla_policy":
                obj["raw_title"], obj["title"] = changes["title"], self._dc(changes["title"])
            obj["updated_at"] = self._stamp()
            self.writes[(kind, object_id)] = self.writes.get((kind, object_id), 0) + 1
            return JSONResponse({kind: self._render(kind, obj, request)})

    def _new_object(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        if kind not in KINDS:
            raise KeyError(f"unknown kind {kind!r}")
        object_id = int(fields.pop("id", 0)) or self._next_id
        self._next_id = max(self._next_id, object_id) + 1
        stamp = self._stamp()
        position = max((o.get("position", 0) for o in self.objects[kind].values()), default=0) + 1
        obj: dict[str, Any] = {"id": object_id, "title": fields.get("title") or f"{kind} {object_id}"}
        if kind == "sla_policy":
            obj.update(description="", position=position, filter={"all": [], "any": []}, policy_metrics=[])
        else:
            obj.update(
                raw_title=obj["title"], active=True, position=position, default=False, description=None
            )
            obj.update(conditions={"all": [], "any": []}, actions=[])
            if kind == "trigger":
                obj["category_id"] = "10026"
        obj.update(created_at=stamp, updated_at=stamp)
        obj.update(copy.deepcopy(fields))
        if kind != "sla_policy" and "raw_title" not in fields:
            obj["raw_title"], obj["title"] = obj["title"], self._dc(obj["title"])
        return obj

    def _render(self, kind: str, obj: dict[str, Any], request: Request) -> dict[str, Any]:
        rendered = copy.deepcopy(obj)
        base = str(request.base_url).rstrip("/")
        rendered["url"] = f"{base}/api/v2/{PATHS[kind]}/{obj['id']}.json"
        return rendered

    def _dc(self, raw: str) -> str:
        """A rule title as Zendesk shows it: `raw_title` keeps `{{dc.NAME}}`, `title` renders it."""
        return DC_RE.sub(lambda m: self.dynamic_content.get(m.group(1), m.group(0)), raw)

    def _stamp(self) -> str:
        """Now as Zendesk writes it (whole seconds, Z), strictly later than the previous stamp:
        within one second the fake's clock runs ahead, so every write has a distinct updated_at."""
        with self._lock:
            self._last_stamp = max(int(self.wall_clock()), self._last_stamp + 1)
            return datetime.fromtimestamp(self._last_stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- request validation --------------------------------------------------------------------


async def _payload(request: Request, kind: str) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except json.JSONDecodeError as error:
        raise ValueError(f"Unparseable JSON: {error.msg}") from error
    if not isinstance(body, dict) or not isinstance(body.get(kind), dict):
        raise Invalid(kind, f"Parameter {kind} is required and must be an object")
    return body[kind]


def _validate(kind: str, payload: dict[str, Any], *, create: bool) -> None:
    if kind == "sla_policy":
        _validate_sla(payload, create=create)
    else:
        _validate_rule(kind, payload, create=create)


def _validate_rule(kind: str, payload: dict[str, Any], *, create: bool) -> None:
    sent = set(payload) - READ_ONLY
    has_conditions, has_actions = "conditions" in sent, "actions" in sent
    if has_conditions != has_actions:
        missing = "actions" if has_conditions else "conditions"
        raise Invalid(missing, f"{missing} must be sent too: conditions and actions are replaced together")
    if not has_conditions and (create or sent - QUICK_FIELDS):
        raise Invalid("conditions", "conditions and actions are required with these fields")
    if create and not payload.get("title"):
        raise Invalid("title", "Title: cannot be blank")
    if "title" in payload and (not isinstance(payload["title"], str) or not payload["title"].strip()):
        raise Invalid("title", "Title: cannot be blank")
    if "active" in payload and not isinstance(payload["active"], bool):
        raise Invalid("active", "Active: must be true or false")
    _check_position(payload)
    if has_conditions:
        _check_conditions("conditions", payload["conditions"])
        _check_actions(payload["actions"])


def _validate_sla(payload: dict[str, Any], *, create: bool) -> None:
    if "active" in payload:
        raise Invalid("active", "SLA policies have no active attribute")
    for required in ("filter", "policy_metrics"):
        if required not in payload:
            raise Invalid(required, f"{required} is required: an SLA policy update replaces it")
    if create and not payload.get("title"):
        raise Invalid("title", "Title: cannot be blank")
    _check_position(payload)
    _check_conditions("filter", payload["filter"])
    metrics = payload["policy_metrics"]
    if not isinstance(metrics, list):
        raise Invalid("policy_metrics", "policy_metrics must be a list")
    for metric in metrics:
        if not isinstance(metric, dict) or metric.get("metric") not in SLA_METRICS:
            raise Invalid("policy_metrics", f"Unknown metric in {metric!r}")
        if metric.get("priority") not in PRIORITIES:
            raise Invalid("policy_metrics", f"Unknown priority in {metric!r}")
        if not isinstance(metric.get("target"), int) or isinstance(metric.get("target"), bool):
            raise Invalid("policy_metrics", f"target must be a number of minutes in {metric!r}")


def _check_position(payload: dict[str, Any]) -> None:
    position = payload.get("position")
    if "position" in payload and (not isinstance(position, int) or isinstance(position, bool)):
        raise Invalid("position", "Position: must be an integer")


def _check_conditions(name: str, block: Any) -> None:
    if not isinstance(block, dict):
        raise Invalid(name, f"{name} must be an object with all and any")
    for group in ("all", "any"):
        items = block.get(group, [])
        if not isinstance(items, list):
            raise Invalid(name, f"{name}.{group} must be a list")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("field"), str):
                raise Invalid(name, f"Invalid condition {item!r}")
            if item.get("operator") not in OPERATORS:
                raise Invalid(name, f"Unknown operator {item.get('operator')!r} for {item['field']}")


def _check_actions(actions: Any) -> None:
    if not isinstance(actions, list) or not actions:
        raise Invalid("actions", "Actions: cannot be blank")
    for action in actions:
        if not isinstance(action, dict) or not isinstance(action.get("field"), str) or "value" not in action:
            raise Invalid("actions", f"Invalid action {action!r}")


def _writable(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The fields a write may set; read-only and unknown fields are ignored, as Zendesk does."""
    allowed = (
        SLA_FIELDS
        if kind == "sla_policy"
        else RULE_FIELDS | ({"category_id"} if kind == "trigger" else set())
    )
    fields = {key: copy.deepcopy(value) for key, value in payload.items() if key in allowed}
    for name in ("conditions", "filter"):
        if name in fields:
            fields[name] = {"all": fields[name].get("all", []), "any": fields[name].get("any", [])}
    return fields


# ---- responses and pagination --------------------------------------------------------------


def _error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "description": description}, status_code=status)


def _invalid(error: Invalid) -> JSONResponse:
    details = {error.field: [{"description": error.description, "error": "InvalidValue"}]}
    body = {"error": "RecordInvalid", "description": "Record validation errors", "details": details}
    return JSONResponse(body, status_code=422)


def _sort_key(obj: dict[str, Any]) -> tuple[int, int]:
    return (int(obj.get("position") or 0), int(obj["id"]))


def _page_size(raw: str | None) -> int:
    if raw is None:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise ValueError("page[size] must be an integer from 1 to 100")
    return int(raw)


def _encode_cursor(obj: dict[str, Any]) -> str:
    position, object_id = _sort_key(obj)
    return base64.urlsafe_b64encode(f"zd1:{position}:{object_id}".encode()).decode().rstrip("=")


def _decode_cursor(raw: str | None) -> tuple[int, int] | None:
    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        marker, position, object_id = text.split(":")
        if marker != "zd1":
            raise ValueError(marker)
        return (int(position), int(object_id))
    except ValueError as error:
        raise ValueError("Invalid cursor") from error


def _slice(
    items: list[dict[str, Any]], size: int, after: tuple[int, int] | None, before: tuple[int, int] | None
) -> tuple[list[dict[str, Any]], bool]:
    """One page by sort key, so objects added or deleted between pages never shift the cursor."""
    if before is not None:
        earlier = [o for o in items if _sort_key(o) < before]
        return earlier[-size:], True
    rest = [o for o in items if after is None or _sort_key(o) > after]
    return rest[:size], len(rest) > size


def _active_filter(obj: dict[str, Any], raw: str | None) -> bool:
    if raw is None or "active" not in obj:
        return True
    return obj["active"] == (raw.lower() == "true")


def _link(url: str, query: Any, size: int, key: str, cursor: str) -> str:
    params = {k: v for k, v in query.items() if not k.startswith("page[")}
    params.update({"page[size]": str(size), key: cursor})
    return f"{url}?{urlencode(params)}"


# ---- realistic random data -----------------------------------------------------------------

_TRIGGER_CONDITIONS = [
    {"field": "update_type", "operator": "is", "value": "Create"},
    {"field": "update_type", "operator": "is", "value": "Change"},
    {"field": "status", "operator": "is_not", "value": "solved"},
    {"field": "status", "operator": "changed", "value": None},
    {"field": "via_id", "operator": "is", "value": 4},
    {"field": "via_id", "operator": "is_not", "value": 5},
    {"field": "priority", "operator": "is", "value": "urgent"},
    {"field": "current_tags", "operator": "includes", "value": "vip"},
    {"field": "current_tags", "operator": "not_includes", "value": "no_autoreply"},
    {"field": "group_id", "operator": "is", "value": "360001234567"},
    {"field": "comment_is_public", "operator": "is", "value": "true"},
    {"field": "role", "operator": "is", "value": "end_user"},
]
_TRIGGER_ACTIONS = [
    {
        "field": "notification_user",
        "value": ["requester_id", "[{{ticket.account}}] Re: {{ticket.title}}", "We got your request."],
    },
    {"field": "notification_group", "value": ["group_id", "New ticket {{ticket.id}}", "{{ticket.url}}"]},
    {"field": "status", "value": "open"},
    {"field": "priority", "value": "high"},
    {"field": "group_id", "value": "360001234567"},
    {"field": "current_tags", "value": "auto_replied"},
    {"field": "notification_webhook", "value": ["01GX7DEMO", '{"ticket": "{{ticket.id}}"}']},
]
_AUTOMATION_CONDITIONS = [
    {"field": "status", "operator": "is", "value": "solved"},
    {"field": "status", "operator": "is", "value": "pending"},
    {"field": "SOLVED", "operator": "greater_than", "value": "96"},
    {"field": "PENDING", "operator": "is", "value": "72"},
    {"field": "NEW", "operator": "greater_than", "value": "24"},
    {"field": "priority", "operator": "less_than", "value": "high"},
    {"field": "current_tags", "operator": "not_includes", "value": "reminder_sent"},
]
_AUTOMATION_ACTIONS = [
    {"field": "status", "value": "closed"},
    {"field": "current_tags", "value": "reminder_sent"},
    {"field": "notification_user", "value": ["requester_id", "Still need help?", "Reply to reopen."]},
    {"field": "satisfaction_score", "value": "offered"},
]
_SLA_FILTERS = [
    {"field": "type", "operator": "is", "value": "incident"},
    {"field": "via_id", "operator": "is", "value": 4},
    {"field": "group_id", "operator": "is", "value": "360001234567"},
    {"field": "organization_id", "operator": "is_not", "value": ""},
    {"field": "ticket_type_id", "operator": "is", "value": "problem"},
]
_NOUNS = ("auto-reply", "escalate", "notify team", "close solved", "CSAT survey", "VIP routing", "reminder")


def _random_fields(kind: str, rng: random.Random, index: int) -> dict[str, Any]:
    past = 1_560_000_000 + index * 86_400 + rng.randrange(86_400)
    stamp = datetime.fromtimestamp(past, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    title = f"{rng.choice(_NOUNS).capitalize()} #{index}"
    fields: dict[str, Any] = {"title": title, "created_at": stamp, "updated_at": stamp}
    if kind == "sla_policy":
        metrics = [
            {
                "priority": p,
                "metric": m,
                "target": rng.choice((30, 60, 240, 480, 1440)),
                "business_hours": rng.random() < 0.5,
            }
            for p in rng.sample(PRIORITIES, rng.randint(1, 4))
            for m in rng.sample(SLA_METRICS[:3], rng.randint(1, 2))
        ]
        filters = rng.sample(_SLA_FILTERS, rng.randint(1, 3))
        fields.update(description=f"SLA {index}", filter={"all": filters, "any": []}, policy_metrics=metrics)
        return fields
    pool_c, pool_a = (
        (_TRIGGER_CONDITIONS, _TRIGGER_ACTIONS)
        if kind == "trigger"
        else (_AUTOMATION_CONDITIONS, _AUTOMATION_ACTIONS)
    )
    conditions = rng.sample(pool_c, rng.randint(1, 4))
    split = rng.randint(0, max(0, len(conditions) - 1)) if rng.random() < 0.3 else len(conditions)
    fields.update(
        active=rng.random() >= 0.25,
        description=rng.choice((None, f"Handles {title.lower()}")),
        conditions={"all": conditions[:split], "any": conditions[split:]},
        actions=rng.sample(pool_a, rng.randint(1, 3)),
    )
    return fields


def seed_random(fake: FakeZendesk, n: int, seed: int = 0) -> list[tuple[str, int]]:
    """Module-level alias of `FakeZendesk.seed_random`."""
    return fake.seed_random(n, seed)


# ---- serving over a real socket ------------------------------------------------------------


@contextlib.contextmanager
def serve_in_thread(app: Any, port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
    """Run `app` with uvicorn in a daemon thread on `host:port` (0 = a free port); yield its base
    URL, e.g. "http://127.0.0.1:53211", and stop the server on exit."""
    sock = _bind(host, port)
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.fakes.zendesk --port N --seed-random 300`: serve a fake account until killed.
    Prints one line `listening on http://HOST:PORT` once it accepts connections."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.zendesk", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed-random", type=int, default=0, metavar="N", help="create N random objects")
    parser.add_argument("--seed", type=int, default=0, help="seed for the data and the fault dice")
    parser.add_argument("--email", default="agent@example.com")
    parser.add_argument("--api-token", default="test-api-token")
    parser.add_argument("--oauth-token", default="test-oauth-token")
    parser.add_argument("--rate-limit", type=int, default=700, help="requests per window; 0 = unlimited")
    parser.add_argument("--rate-window", type=float, default=60.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--throttle-rate", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args(argv)
    fake = FakeZendesk(
        email=args.email,
        api_token=args.api_token,
        oauth_token=args.oauth_token or None,
        rate_limit=args.rate_limit or None,
        rate_window=args.rate_window,
        error_rate=args.error_rate,
        throttle_rate=args.throttle_rate,
        latency=args.latency,
        seed=args.seed,
    )
    fake.seed_random(args.seed_random, args.seed)
    with serve_in_thread(fake, port=args.port, host=args.host) as url:
        print(f"listening on {url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
