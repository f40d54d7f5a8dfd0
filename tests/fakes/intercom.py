"""A stateful fake of Intercom's REST API, written as an ASGI app.

It serves the few operations migration-guard uses (`GET /export/workflows/{id}`,
`GET /conversations/{id}`, `GET /me`) and knows every other operation only from Intercom's own
OpenAPI description (`../shared/specs/intercom/<version>/api.intercom.io.yaml`, never copied into
the repository): a method and path the description for the requested `Intercom-Version` lacks is
answered 404 `not_found`, as Intercom answers it. State changes only as a person would make them in
Intercom's UI, through the test helpers (`set_state`, `restrict_plan`, `add_workflow_part`, ...).

With `validate=True` (the default; tests keep it on) every body the fake sends is checked against
the description's response schema for that operation and status (errors the description does not
declare for an operation are checked against its generic `error` schema); a mismatch is recorded in
`mismatches` and, with `raise_on_mismatch`, raised as `ResponseMismatch` so the test fails.

Serve it in-process with `httpx.ASGITransport(app=fake)`, or over a socket with `serve_in_thread`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Specification
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REPO_ROOT = Path(__file__).resolve().parents[2]
SPECS_DIR = REPO_ROOT.parent / "shared" / "specs"
INTERCOM_SPECS = SPECS_DIR / "intercom"
# Intercom-Version header value -> folder of its OpenAPI description ("0" is Preview).
SPEC_FOLDERS = {"2.14": "2.14", "2.16": "2.16", "Preview": "0"}
WORKFLOW_STATES = ("live", "draft", "paused")
WORKFLOW_PART_TYPES = ("operator_workflow_event", "conversation_attribute_updated_by_workflow")
MAX_PARTS = 500  # Intercom returns at most the 500 most recent parts of a conversation
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class SpecUnavailable(RuntimeError):
    """The Intercom OpenAPI descriptions are not beside the checkout (e.g. a user's clone)."""


class ResponseMismatch(AssertionError):
    """The fake was about to send a body its OpenAPI description does not allow."""


def specs_available(specs_dir: Path = SPECS_DIR) -> bool:
    return all(
        (specs_dir / "intercom" / folder / "api.intercom.io.yaml").is_file()
        for folder in SPEC_FOLDERS.values()
    )


SKIP_REASON = (
    f"Intercom OpenAPI descriptions not found at {INTERCOM_SPECS} "
    "(they live beside the checkout in ../shared/specs and are never copied into the repository)"
)


# --------------------------------------------------------------------------- spec loading


def _cache_dir() -> Path | None:
    """A per-user cache of parsed descriptions (JSON loads ~50x faster than YAML)."""
    path = Path(tempfile.gettempdir()) / f"migration-guard-spec-cache-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        if path.stat().st_uid != os.getuid():
            return None
    except OSError:
        return None
    return path


def load_document(path: Path) -> dict[str, Any]:
    """Parse one OpenAPI YAML file, through a JSON cache keyed by the file's content hash."""
    raw = path.read_bytes()
    cache = _cache_dir()
    cached = cache / f"{hashlib.sha256(raw).hexdigest()}.json" if cache else None
    if cached is not None and cached.is_file():
        try:
            return json.loads(cached.read_text("utf-8"))
        except (OSError, ValueError):
            pass
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document = yaml.load(raw, Loader=loader)
    if cached is not None:
        with contextlib.suppress(OSError, TypeError, ValueError):
            temporary = cached.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(document), "utf-8")
            os.replace(temporary, cached)
    return document


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    template: str  # the path as the description writes it, e.g. /export/workflows/{id}
    operation_id: str | None
    responses: dict[str, Any]


class OpenApiSpec:
    """One version of Intercom's description: which routes exist, and response validators."""

    def __init__(self, version: str, document: dict[str, Any]):
        self.version = version
        self.document = document
        self.uri = f"urn:intercom-openapi:{version}"
        self._registry: Registry = Registry().with_resource(
            self.uri, Specification.OPAQUE.create_resource(document)
        )
        self._validators: dict[str, Any] = {}
        self._lock = threading.Lock()
        routes: list[tuple[int, int, re.Pattern[str], str, dict[str, Operation]]] = []
        for template, item in document["paths"].items():
            operations = {
                method.upper(): Operation(
                    method.upper(), template, op.get("operationId"), op.get("responses", {})
                )
                for method, op in item.items()
                if method.upper() in ALL_METHODS
            }
            params = template.count("{")
            pattern = re.compile(
                "^"
                + "".join(
                    "([^/]+)" if part.startswith("{") else re.escape(part)
                    for part in re.split(r"(\{[^}]+\})", template)
                    if part
                )
                + "$"
            )
            literal = len(re.sub(r"\{[^}]+\}", "", template))
            routes.append((params, -literal, pattern, template, operations))
        routes.sort(key=lambda route: (route[0], route[1]))
        self._routes = routes

    @property
    def operations(self) -> list[Operation]:
        return [op for *_, ops in self._routes for op in ops.values()]

    def match(self, method: str, path: str) -> tuple[Operation, list[str]] | None:
        """The operation serving `method path` (literal segments win over templated ones)."""
        for _params, _literal, pattern, _template, operations in self._routes:
            found = pattern.match(path)
            if found and method.upper() in operations:
                return operations[method.upper()], list(found.groups())
        return None

    def has_route(self, method: str, path: str) -> bool:
        return self.match(method, path) is not None

    def schema_pointer(self, operation: Operation | None, status: int) -> tuple[str | None, bool]:
        """JSON pointer of the schema for (operation, status) and whether the operation declares it.
        Errors an operation does not declare (401 on some, 429 on most) fall back to `error`."""
        if operation is not None:
            response = operation.responses.get(str(status)) or (
                operation.responses.get("default") if status >= 400 else None
            )
            if response is not None:
                key = str(status) if str(status) in operation.responses else "default"
                if "$ref" in response:
                    pointer = response["$ref"].removeprefix("#")
                    response = self._resolve(pointer)
                else:
                    template = operation.template.replace("~", "~0").replace("/", "~1")
                    pointer = f"/paths/{template}/{operation.method.lower()}/responses/{key}"
                if "application/json" in response.get("content", {}):
                    return f"{pointer}/content/application~1json/schema", True
                return None, True
        if status >= 400:
            return "/components/schemas/error", False
        return None, False

    def _resolve(self, pointer: str) -> Any:
        node: Any = self.document
        for part in pointer.strip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def validator(self, pointer: str) -> Any:
        with self._lock:
            found = self._validators.get(pointer)
            if found is None:
                found = OAS30Validator(
                    {"$ref": f"{self.uri}#{pointer}"},
                    registry=self._registry,
                    format_checker=OAS30Validator.FORMAT_CHECKER,
                )
                self._validators[pointer] = found
            return found

    def check(self, operation: Operation | None, status: int, body: Any) -> list[str]:
        """Problems with sending `body` as the answer `status` to `operation` (empty when fine)."""
        where = f"{operation.method} {operation.template}" if operation else "unknown route"
        pointer, declared = self.schema_pointer(operation, status)
        if pointer is None:
            if declared and body is None:
                return []
            return [f"{where} -> {status}: the description declares no JSON body for this answer"]
        errors = sorted(self.validator(pointer).iter_errors(body), key=lambda error: list(error.path))
        return [
            f"{where} -> {status} (Intercom-Version {self.version}): "
            f"{'/'.join(map(str, error.absolute_path)) or '<body>'}: {error.message}"
            for error in errors[:5]
        ]


@cache
def get_spec(version: str = "2.16", specs_dir: Path = SPECS_DIR) -> OpenApiSpec:
    """The description of one `Intercom-Version` (2.14, 2.16 or Preview), loaded once per process."""
    folder = SPEC_FOLDERS.get(version)
    if folder is None:
        raise KeyError(f"no Intercom description for version {version!r}; have {sorted(SPEC_FOLDERS)}")
    path = specs_dir / "intercom" / folder / "api.intercom.io.yaml"
    if not path.is_file():
        raise SpecUnavailable(SKIP_REASON)
    return OpenApiSpec(version, load_document(path))


# --------------------------------------------------------------------------- the fake


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    status: int
    version: str | None


@dataclass(frozen=True)
class _Exchange:
    """One request as the fake routes it: the description of its version and its operation."""

    spec: OpenApiSpec
    method: str
    path: str
    version: str | None
    operation: Operation | None


class SkewClock:
    """Real time plus whatever the code under test has 'slept': pass `clock` to the fake and
    `sleep` to HttpTarget, and a wait for X-RateLimit-Reset takes no real time. Waits are computed
    from real time (parse_wait), so the skew only ever makes a client wait longer, never shorter."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return time.time() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += max(0.0, seconds)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeIntercom:
    """The fake Intercom workspace. Knobs are constructor arguments and public attributes."""

    def __init__(
        self,
        *,
        token: str = "test-token",
        default_version: str = "2.16",
        window_budget: int = 1666,  # 10,000/min per app, spread over 10-second windows
        window_seconds: float = 10.0,
        window_origin: float = 0.0,  # windows start at origin + k * window_seconds
        clock: Callable[[], float] = time.time,
        validate: bool = True,
        raise_on_mismatch: bool = True,
        app_id: int = 12345,
        app_id_code: str = "abc123de",
        specs_dir: Path = SPECS_DIR,
    ):
        self.token = token
        self.default_version = default_version
        self.window_budget = window_budget
        self.window_seconds = window_seconds
        self.window_origin = window_origin
        self.clock = clock
        self.validate = validate
        self.raise_on_mismatch = raise_on_mismatch
        self.app_id = app_id
        self.app_id_code = app_id_code
        self.specs_dir = specs_dir
        self.plan_restricted = False
        # state, as a person would see it in Intercom's UI
        self.workflows: dict[str, dict[str, Any]] = {}
        self.conversations: dict[str, dict[str, Any]] = {}
        # observability
        self.calls: list[Call] = []
        self.exports: Counter[str] = Counter()
        self.rate_limited = 0  # 429s sent
        self.resets_sent: list[int] = []  # X-RateLimit-Reset of each 429
        self.validated = 0  # bodies checked against the description
        self.undeclared: set[tuple[str, str, int]] = set()  # (method, template, status) checked as `error`
        self.mismatches: list[str] = []
        # failure injection
        self._inject: list[int] = []
        self._window_start = -math.inf
        self._window_used = 0
        self._next_part = 1000
        self._lock = threading.RLock()
        get_spec(default_version, specs_dir)  # fail early (SpecUnavailable) when the specs are absent
        self._app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=ALL_METHODS)],
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    # ----------------------------------------------------------------- people's actions (test helpers)

    def add_workflow(
        self,
        workflow_id: str,
        title: str,
        *,
        state: str = "live",
        trigger_type: str = "inbound_conversation",
        description: str | None = None,
        target_channels: list[str] | None = None,
        preferred_devices: list[str] | None = None,
        targeting: dict[str, Any] | None = None,
        snapshot: dict[str, Any] | None = None,
        attributes: list[dict[str, Any]] | None = None,
        embedded_rules: list[dict[str, Any]] | None = None,
        created_at: float | None = None,
    ) -> dict[str, Any]:
        """A person builds a workflow in the UI."""
        self._check_state(state)
        now = self.clock() if created_at is None else created_at
        workflow = {
            "id": str(workflow_id),
            "title": title,
            "description": description,
            "trigger_type": trigger_type,
            "state": state,
            "target_channels": list(target_channels if target_channels is not None else ["chat"]),
            "preferred_devices": list(preferred_devices if preferred_devices is not None else ["desktop"]),
            "created_at": _iso(now),
            "updated_at": _iso(now),
            "targeting": copy.deepcopy(targeting) if targeting is not None else {"predicates": []},
            "snapshot": copy.deepcopy(snapshot) if snapshot is not None else {"steps": []},
            "attributes": copy.deepcopy(attributes or []),
            "embedded_rules": copy.deepcopy(embedded_rules or []),
        }
        with self._lock:
            self.workflows[str(workflow_id)] = workflow
        return copy.deepcopy(workflow)

    def set_state(self, workflow_id: str, state: str) -> None:
        """A person sets a workflow live, pauses it, or returns it to draft."""
        self._check_state(state)
        self.update_workflow(workflow_id, state=state)

    def update_workflow(self, workflow_id: str, **changes: Any) -> None:
        """A person edits a workflow (title, targeting, ...); `updated_at` moves as in Intercom."""
        with self._lock:
            workflow = self.workflows[str(workflow_id)]
            unknown = set(changes) - set(workflow) | ({"id", "created_at", "updated_at"} & set(changes))
            if unknown:
                raise ValueError(f"cannot change {sorted(unknown)} of a workflow")
            if "state" in changes:
                self._check_state(changes["state"])
            workflow.update(copy.deepcopy(changes))
            workflow["updated_at"] = _iso(self.clock())

    def delete_workflow(self, workflow_id: str) -> None:
        with self._lock:
            del self.workflows[str(workflow_id)]

    def restrict_plan(self, restricted: bool = True) -> None:
        """The workspace's plan refuses workflow export (403 `api_plan_restricted`)."""
        self.plan_restricted = restricted

    def add_conversation(self, conversation_id: str, *, created_at: float | None = None) -> None:
        now = int(self.clock() if created_at is None else created_at)
        with self._lock:
            self.conversations[str(conversation_id)] = {"created_at": now, "updated_at": now, "parts": []}

    def add_part(
        self,
        conversation_id: str,
        part_type: str,
        *,
        body: str | None = None,
        author_type: str = "admin",
        author_name: str = "Support Agent",
        event_details: dict[str, Any] | None = None,
        created_at: float | None = None,
    ) -> str:
        """Something happens in a conversation (a comment, a note, a workflow acting on it).
        Creates the conversation when it does not exist. Returns the part id."""
        now = int(self.clock() if created_at is None else created_at)
        with self._lock:
            if str(conversation_id) not in self.conversations:
                self.add_conversation(conversation_id, created_at=now)
            conversation = self.conversations[str(conversation_id)]
            self._next_part += 1
            part_id = str(self._next_part)
            part: dict[str, Any] = {
                "type": "conversation_part",
                "id": part_id,
                "part_type": part_type,
                "body": body,
                "created_at": now,
                "updated_at": now,
                "notified_at": now,
                "author": {
                    "type": author_type,
                    "id": "991267001" if author_type != "bot" else "991267002",
                    "name": author_name,
                    "email": "operator+abc123de@intercom.io" if author_type == "bot" else "agent@example.com",
                },
                "attachments": [],
                "external_id": None,
                "redacted": False,
                "app_package_code": None,
            }
            if event_details is not None:
                part["event_details"] = copy.deepcopy(event_details)
            conversation["parts"].append(part)
            conversation["updated_at"] = max(conversation["updated_at"], now)
        return part_id

    def add_workflow_part(
        self,
        conversation_id: str,
        workflow_name: str,
        *,
        part_type: str = "operator_workflow_event",
        event_type: str = "workflow_started",
        event_result: str = "Workflow started",
        attribute: str = "priority",
        value: str = "high",
        created_at: float | None = None,
    ) -> str:
        """A workflow acts on a conversation: an `operator_workflow_event` part (workflow.name,
        event.type/result) or a `conversation_attribute_updated_by_workflow` part (workflow.name,
        attribute.name, value.name)."""
        if part_type == "operator_workflow_event":
            details = {
                "workflow": {"name": workflow_name},
                "event": {"type": event_type, "result": event_result},
            }
        elif part_type == "conversation_attribute_updated_by_workflow":
            details = {
                "workflow": {"name": workflow_name},
                "attribute": {"name": attribute},
                "value": {"name": value},
            }
        else:
            raise ValueError(f"{part_type!r} is not a workflow part type; use one of {WORKFLOW_PART_TYPES}")
        return self.add_part(
            conversation_id,
            part_type,
            author_type="bot",
            author_name="Operator",
            event_details=details,
            created_at=created_at,
        )

    def inject_errors(self, status: int, count: int = 1) -> None:
        """The next `count` authenticated calls answer `status` (e.g. 500, 503) with an error list."""
        with self._lock:
            self._inject.extend([status] * count)

    # ----------------------------------------------------------------- observability

    def calls_to(self, method: str, path: str) -> int:
        return sum(1 for call in self.calls if call.method == method.upper() and call.path == path)

    def assert_conformant(self) -> None:
        """Raise if any answer did not match the description (for fixtures' teardown)."""
        if self.mismatches:
            raise ResponseMismatch("\n".join(self.mismatches))

    def check_response(
        self, method: str, path: str, status: int, body: Any, version: str | None = None
    ) -> list[str]:
        """What validation would say about answering `method path` with `status` and `body`."""
        spec = get_spec(version or self.default_version, self.specs_dir)
        matched = spec.match(method, path)
        return spec.check(matched[0] if matched else None, status, body)

    # ----------------------------------------------------------------- request handling

    async def _handle(self, request: Request) -> Response:
        version = request.headers.get("Intercom-Version")
        known = version is None or version in SPEC_FOLDERS
        spec = get_spec(version if known and version else self.default_version, self.specs_dir)
        method, path = request.method.upper(), request.url.path
        matched = spec.match(method, path)
        ask = _Exchange(spec, method, path, version, matched[0] if matched else None)
        with self._lock:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return self._error(ask, 401, "unauthorized", "Access Token Invalid")
            if not known:
                served = ", ".join(SPEC_FOLDERS)
                return self._error(
                    ask,
                    400,
                    "intercom_version_invalid",
                    f"The fake Intercom serves Intercom-Version {served} only",
                )
            now = self.clock()
            windows = math.floor((now - self.window_origin) / self.window_seconds)
            start = self.window_origin + windows * self.window_seconds
            if start != self._window_start:
                self._window_start, self._window_used = start, 0
            if self._window_used >= self.window_budget:
                self.rate_limited += 1
                self.resets_sent.append(self._reset())
                return self._error(ask, 429, "rate_limit_exceeded", "Exceeded rate limit")
            self._window_used += 1
            if matched is None:
                return self._error(ask, 404, "not_found", f"No route matches {method} {path}")
            operation, params = matched
            if self._inject:
                return self._error(ask, self._inject.pop(0), "server_error", "Server Error")
            handler = HANDLERS.get(operation.operation_id or "")
            if handler is None:
                message = f"the fake Intercom does not implement {method} {operation.template}"
                return self._error(ask, 501, "not_implemented", message)
            status, body = handler(self, *params)
            return self._answer(ask, status, body)

    def _reset(self) -> int:
        return math.ceil(self._window_start + self.window_seconds)

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.window_budget),
            "X-RateLimit-Remaining": str(max(0, self.window_budget - self._window_used)),
            "X-RateLimit-Reset": str(
                self._reset() if self._window_start > -math.inf else math.ceil(self.clock())
            ),
        }

    def _error(self, ask: _Exchange, status: int, code: str, message: str) -> Response:
        return self._answer(ask, status, _errors(code, message))

    def _answer(self, ask: _Exchange, status: int, body: Any) -> Response:
        self.calls.append(Call(ask.method, ask.path, status, ask.version))
        if self.validate:
            problems = ask.spec.check(ask.operation, status, body)
            self.validated += 1
            if ask.spec.schema_pointer(ask.operation, status)[1] is False:
                template = ask.operation.template if ask.operation else ask.path
                self.undeclared.add((ask.method, template, status))
            if problems:
                self.mismatches.extend(problems)
                if self.raise_on_mismatch:
                    raise ResponseMismatch("\n".join(problems))
        return JSONResponse(body, status_code=status, headers=self._rate_headers())

    # ----------------------------------------------------------------- operations

    def _export_workflow(self, workflow_id: str) -> tuple[int, Any]:
        self.exports[workflow_id] += 1
        if self.plan_restricted:
            return 403, _errors("api_plan_restricted", "Workflow export is not available for this app")
        workflow = self.workflows.get(workflow_id)
        if workflow is None:
            return 404, _errors("not_found", "Workflow not found")
        return 200, {
            "export_version": "1.0",
            "exported_at": _iso(self.clock()),
            "app_id": self.app_id,
            "workflow": copy.deepcopy(workflow),
        }

    def _retrieve_conversation(self, conversation_id: str) -> tuple[int, Any]:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return 404, _errors("not_found", "Resource Not Found")
        parts = copy.deepcopy(conversation["parts"][-MAX_PARTS:])
        return 200, {
            "type": "conversation",
            "id": conversation_id,
            "title": None,
            "created_at": conversation["created_at"],
            "updated_at": conversation["updated_at"],
            "waiting_since": None,
            "snoozed_until": None,
            "open": False,
            "state": "closed",
            "read": True,
            "admin_assignee_id": 0,
            "team_assignee_id": 0,
            "tags": {"type": "tag.list", "tags": []},
            "source": {
                "type": "email",
                "id": f"{conversation_id}0",
                "delivered_as": "customer_initiated",
                "subject": "",
                "body": "<p>Imported message</p>",
                "author": {"type": "user", "id": "6762f1261bb69f9f2193bba7", "name": "Customer"},
                "attachments": [],
                "url": None,
                "redacted": False,
            },
            "contacts": {"type": "contact.list", "contacts": []},
            "custom_attributes": {},
            "conversation_parts": {
                "type": "conversation_part.list",
                "conversation_parts": parts,
                "total_count": len(parts),
            },
        }

    def _identify_admin(self) -> tuple[int, Any]:
        return 200, {
            "type": "admin",
            "id": "991267459",
            "email": "admin@example.com",
            "name": "Migration Admin",
            "email_verified": True,
            "app": {
                "type": "app",
                "id_code": self.app_id_code,
                "name": "Fake Workspace",
                "created_at": 1734537243,
                "identity_verification": False,
                "timezone": "Europe/Dublin",
                "region": "US",
            },
            "avatar": {"type": "avatar", "image_url": None},
            "has_inbox_seat": True,
        }

    @staticmethod
    def _check_state(state: str) -> None:
        if state not in WORKFLOW_STATES:
            raise ValueError(f"workflow state must be one of {WORKFLOW_STATES}, not {state!r}")


def _errors(code: str, message: str) -> dict[str, Any]:
    return {
        "type": "error.list",
        "request_id": str(uuid.uuid4()),
        "errors": [{"code": code, "message": message}],
    }


# operationId -> handler; path parameters are passed positionally.
HANDLERS: dict[str, Callable[..., tuple[int, Any]]] = {
    "exportWorkflow": FakeIntercom._export_workflow,
    "retrieveConversation": FakeIntercom._retrieve_conversation,
    "identifyAdmin": FakeIntercom._identify_admin,
}


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (a free port) in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-http")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
