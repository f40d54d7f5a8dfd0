"""The one Starlette app: Slack's events, the health check, and the progress API."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.deps import Deps

MAX_BODY = 1024 * 1024  # 1 MiB, for every route


class BodyLimit:
    """Answer 413 before reading more than MAX_BODY bytes, whatever Content-Length claims."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(scope, receive, send, self.limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(scope, receive, send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    body = {"error": "body_too_large", "detail": f"bodies are limited to {limit} bytes", "field": None}
    response = JSONResponse(body, status_code=413)
    await response(scope, receive, send)


def create_http_app(deps: Deps, slack_app: AsyncApp | None, api_routes: list[BaseRoute]) -> Starlette:
    routes: list[BaseRoute] = [Route("/healthz", _health(deps), methods=["GET"])]
    if slack_app is not None:
        handler = AsyncSlackRequestHandler(slack_app)

        async def slack_events(request: Request) -> Response:
            return await handler.handle(request)

        routes.append(Route("/slack/events", slack_events, methods=["POST"]))
    app = Starlette(routes=[*routes, *api_routes])
    app.add_middleware(BodyLimit)
    return app


def _health(deps: Deps) -> Any:
    async def health(request: Request) -> Response:
        try:
            async with deps.db.engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
        except Exception as error:
            return JSONResponse({"ok": False, "database": type(error).__name__}, status_code=503)
        return JSONResponse({"ok": True, "platform": deps.platform.name, "sandbox": deps.is_sandbox})

    return health
