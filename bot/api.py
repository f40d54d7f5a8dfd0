"""The progress API (/api/v1): import scripts report runs and batches and ask whether it is safe to
import. Bearer GUARD_API_TOKEN (compared in constant time), JSON bodies only, strict schemas; every
error is rendered by `error_response` as {"error": code, "detail": message, "field": name or null}.
Ingest answers once the report is stored; Slack is updated afterwards by bot.progress's coalescer."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot import leaks
from bot.deps import Deps
from bot.errors import ConflictError, GuardError, NotFound, UsageError, error_id
from bot.progress import BatchAck, BatchReport, Preflight, ProgressService, RunView
from bot.settings import Settings
from bot.slack.context import SlackContext

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_INT = 2**31 - 1  # the columns are 32-bit integers on PostgreSQL
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
JSON_TYPES = ("application/json",)


# --------------------------------------------------------------------------------------------------
# bodies (strict: no coercion, unknown fields refused)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class StartRun(_Body):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    total_records: Count | None = None
    total_batches: Count | None = None
    source: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class ReportBatch(_Body):
    batch: Count
    ok: Count
    failed: Count
    errors: Annotated[list[Annotated[str, Field(max_length=2000)]], Field(max_length=1000)] = []
    record_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = []


class FinishRun(_Body):
    status: Literal["completed", "failed"] = "completed"


# --------------------------------------------------------------------------------------------------
# errors: one renderer


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.status, self.code, self.detail, self.field = status, code, detail, field
        self.headers, self.extra = headers, extra

    def response(self) -> JSONResponse:
        return error_response(
            self.status, self.code, self.detail, field=self.field, headers=self.headers, **self.extra
        )


def error_response(
    status: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, "field": field, **extra}, status, headers)


def _api_error(error: Exception) -> ApiError:
    """Typed errors from the core, rendered for HTTP; anything else gets an id for the logs."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, NotFound):
        return ApiError(404, "not_found", str(error))
    if isinstance(error, ConflictError):
        return ApiError(409, "conflict", str(error))
    if isinstance(error, UsageError):
        return ApiError(422, "invalid", str(error))
    if isinstance(error, GuardError):
        return ApiError(400, "refused", str(error))
    ident = error_id()
    log.error("unexpected API error %s", ident, exc_info=error)
    return ApiError(500, "internal", f"unexpected error {ident}; nothing was stored")


MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required",
    "int_type": "must be an integer",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "model_type": "the body must be a JSON object",
}


def _field(loc: tuple[int | str, ...]) -> str | None:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or None


def _invalid(error: ValidationError) -> ApiError:
    problems = [(_field(e["loc"]), MESSAGES.get(e["type"], e["msg"])) for e in error.errors()]
    if error.errors()[0]["type"] == "json_invalid":
        return ApiError(422, "invalid_json", f"the body is not JSON: {error.errors()[0]['msg']}")
    detail = "; ".join(f"{name}: {message}" if name else message for name, message in problems)
    return ApiError(
        422,
        "invalid",
        detail,
        field=problems[0][0],
        errors=[{"field": name, "detail": message} for name, message in problems],
    )


# --------------------------------------------------------------------------------------------------
# rendering


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def run_json(view: RunView) -> dict[str, Any]:
    fraction = view.fraction
    return {
        "id": view.id,
        "name": view.name,
        "source": view.source,
        "target": view.target,
        "status": view.status,
        "finished": view.finished,
        "ok": view.ok,
        "failed": view.failed,
        "processed": view.processed,
        "batches": view.batches,
        "total_records": view.total_records,
        "total_batches": view.total_batches,
        "percent": None if fraction is None else round(fraction * 100, 2),
        "failure_rate": round(view.failure_rate, 6),
        "rate_per_second": None if view.rate is None else round(view.rate, 3),
        "eta_seconds": None if view.eta is None else round(view.eta.total_seconds()),
        "created_at": _when(view.created_at),
        "finished_at": _when(view.finished_at),
        "last_batch_at": _when(view.last_batch_at),
        "guard_state": view.guard.state,
        "safe_to_import": view.guard.safe_to_import,
        "warned_live": view.warned_live,
        "slack": {"channel": view.slack_channel, "ts": view.slack_ts} if view.slack_ts else None,
    }


def ack_json(ack: BatchAck) -> dict[str, Any]:
    return {
        "id": ack.run_id,
        "batch": ack.batch,
        "stored": True,
        "guard_state": ack.guard.state,
        "safe_to_import": ack.guard.safe_to_import,
        "warning": ack.warning,
    }


def preflight_json(preflight: Preflight) -> dict[str, Any]:
    return {
        "safe_to_import": preflight.safe_to_import,
        "targets": [
            {
                "target": guard.target,
                "platform": guard.platform,
                "state": guard.state,
                "safe_to_import": guard.safe_to_import,
                "reason": guard.reason,
                "since": _when(guard.since),
                "changed_by": guard.changed_by,
            }
            for guard in preflight.targets
        ],
    }


# --------------------------------------------------------------------------------------------------
# routes

Handler = Callable[[Request, bytes], Awaitable[Response]]
BodyT = TypeVar("BodyT", bound=_Body)


def progress_service(deps: Deps, slack: SlackContext | None) -> ProgressService:
    """The process's progress service; with Slack, runs are shown in the migration channel."""
    if slack is None:
        return ProgressService(deps)
    from bot.slack.leaks import make_batch_listener
    from bot.slack.progress import SlackPublisher

    listeners = [make_batch_listener(deps, slack)] if leaks.can_watch(deps) else []
    return ProgressService(deps, SlackPublisher(slack), spawn=slack.spawn, batch_listeners=listeners)


def routes(
    deps: Deps, slack: SlackContext | None, *, service: ProgressService | None = None
) -> list[BaseRoute]:
    service = service or progress_service(deps, slack)
    api = _Api(service)

    def route(path: str, handler: Handler, method: str, *, empty_body: bool = False) -> Route:
        return Route(PREFIX + path, _endpoint(deps.settings, handler, empty_body), methods=[method])

    return [
        route("/runs", api.start, "POST"),
        route("/runs/{run_id}/batches", api.batch, "POST"),
        route("/runs/{run_id}/finish", api.finish, "POST", empty_body=True),
        route("/runs/{run_id}", api.get, "GET", empty_body=True),
        route("/guard", api.guard, "GET", empty_body=True),
    ]


def _endpoint(
    settings: Settings, handler: Handler, empty_body: bool
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            _authorize(settings, request)
        except ApiError as error:
            return error.response()
        # Read outside the error handler: BodyLimit (bot/http.py) answers 413 from an exception here.
        body = await request.body()
        try:
            if body or not empty_body:
                _require_json(request)
            return await handler(request, body)
        except Exception as error:
            return _api_error(error).response()

    return endpoint


def _authorize(settings: Settings, request: Request) -> None:
    if settings.guard_api_token is None:
        raise ApiError(503, "not_configured", "the progress API is not configured: set GUARD_API_TOKEN")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = settings.guard_api_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise ApiError(
            401,
            "unauthorized",
            "send the header Authorization: Bearer <GUARD_API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _require_json(request: Request) -> None:
    mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if mime not in JSON_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send JSON with Content-Type: application/json (got {mime or 'none'})",
        )


def _parse(model: type[BodyT], body: bytes) -> BodyT:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as error:
        raise _invalid(error) from None


class _Api:
    def __init__(self, service: ProgressService):
        self.service = service

    async def start(self, request: Request, body: bytes) -> Response:
        data = _parse(StartRun, body)
        view = await self.service.start_run(
            name=data.name,
            total_records=data.total_records,
            total_batches=data.total_batches,
            source=data.source,
        )
        return JSONResponse(run_json(view), 201, {"Location": f"{PREFIX}/runs/{view.id}"})

    async def batch(self, request: Request, body: bytes) -> Response:
        data = _parse(ReportBatch, body)
        report = BatchReport(data.batch, data.ok, data.failed, data.errors, data.record_ids)
        ack = await self.service.report_batch(request.path_params["run_id"], report)
        return JSONResponse(ack_json(ack))

    async def finish(self, request: Request, body: bytes) -> Response:
        data = _parse(FinishRun, body)
        return JSONResponse(
            run_json(await self.service.finish_run(request.path_params["run_id"], status=data.status))
        )

    async def get(self, request: Request, body: bytes) -> Response:
        return JSONResponse(run_json(await self.service.run_view(request.path_params["run_id"])))

    async def guard(self, request: Request, body: bytes) -> Response:
        return JSONResponse(preflight_json(await self.service.preflight()))
