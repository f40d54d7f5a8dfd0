"""`migration-guard serve`: HTTP always, Socket Mode too when SLACK_APP_TOKEN is set, the reminder
clock, and the resumption of any apply a crash interrupted."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from bot import api, engine, reminders
from bot.deps import Deps, build_deps
from bot.http import create_http_app
from bot.settings import Settings, SettingsError
from bot.slack import create_app
from bot.slack.approvals import show_outcome
from bot.slack.context import SlackContext
from bot.slack.reminders import deliverer

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its own shutdown, which would kill the process before our
    cleanup (background work, Socket Mode, scheduler, database) runs; we handle signals ourselves."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        self.should_exit = True


def check_serve_settings(settings: Settings) -> None:
    for name in ("slack_bot_token", "slack_signing_secret"):
        if getattr(settings, name) is None:
            raise SettingsError(
                f"setting {name.upper()}: required to serve (see README: installing the Slack app)"
            )
    if not settings.guard_channel:
        raise SettingsError(
            "setting GUARD_CHANNEL: required to serve (the channel id of the migration channel)"
        )


async def serve(settings: Settings, *, port: int | None = None) -> None:
    check_serve_settings(settings)
    deps = await build_deps(settings)
    slack_app, slack = create_app(deps)
    scheduler = reminders.start_scheduler(deps, deliverer(slack))
    http_app = create_http_app(deps, slack_app, api.routes(deps, slack))
    server = _Server(
        uvicorn.Config(
            http_app, host="0.0.0.0", port=port or settings.port, log_level="info", access_log=False
        )
    )
    socket_mode = None
    if settings.slack_app_token is not None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        socket_mode = AsyncSocketModeHandler(slack_app, settings.slack_app_token.get_secret_value())
        await socket_mode.connect_async()
        log.info("Socket Mode connected")
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, server.stop)
    slack.spawn(resume_interrupted(deps, slack), name="resume")
    if deps.is_sandbox:
        log.info("platform: sandbox (sample helpdesk in the local database)")
    try:
        await server.serve()
    finally:
        scheduler.shutdown(wait=False)
        if socket_mode is not None:
            await socket_mode.close_async()
        await slack.aclose()
        await deps.aclose()


async def resume_interrupted(deps: Deps, slack: SlackContext) -> None:
    """An apply that a crash or restart interrupted continues from its journal."""
    for outcome in await engine.resume_all(deps, actor="system:restart"):
        log.info("resumed %s: %s", outcome.request.id, outcome.request.status)
        await show_outcome(slack, outcome)
