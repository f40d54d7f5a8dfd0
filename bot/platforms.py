"""Build the configured platform adapter from Settings. The only place adapters meet settings."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlmodel import col, select

from adapters import PLATFORMS
from adapters.base import Platform
from adapters.http import HttpTarget, build_client
from adapters.intercom import IntercomPlatform, intercom_headers
from adapters.sandbox import SandboxPlatform
from adapters.zendesk import ZendeskPlatform, zendesk_auth, zendesk_base_url
from bot.db import Database
from bot.models import TrackedWorkflow
from bot.settings import Settings, SettingsError, parse_rate

Builder = Callable[[Settings, Database, "httpx.AsyncBaseTransport | None"], Platform]


def build_platform(
    settings: Settings, db: Database, transport: httpx.AsyncBaseTransport | None = None
) -> Platform:
    """`transport` lets tests serve a fake platform in-process."""
    name = settings.guard_platform
    if name not in PLATFORMS:
        known = ", ".join(sorted(PLATFORMS))
        raise SettingsError(f"setting GUARD_PLATFORM: unknown platform {name!r}; choose one of {known}")
    try:
        return BUILDERS[name](settings, db, transport)
    except ValueError as error:
        raise SettingsError(str(error)) from None


def _sandbox(settings: Settings, db: Database, transport: httpx.AsyncBaseTransport | None) -> Platform:
    return SandboxPlatform(db.sessions)


def _zendesk(settings: Settings, db: Database, transport: httpx.AsyncBaseTransport | None) -> Platform:
    base = zendesk_base_url(settings.zendesk_subdomain, settings.zendesk_url)
    auth = zendesk_auth(
        settings.zendesk_email,
        _secret(settings.zendesk_api_token),
        _secret(settings.zendesk_oauth_token),
    )
    client = build_client(base, auth=auth, transport=transport)
    http = HttpTarget(
        client, rate_per_second=parse_rate(settings.zendesk_rate_limit), reset_headers=("ratelimit-reset",)
    )
    return ZendeskPlatform(http, web_url=base)


def _intercom(settings: Settings, db: Database, transport: httpx.AsyncBaseTransport | None) -> Platform:
    token = _secret(settings.intercom_access_token)
    if not token:
        raise ValueError("setting INTERCOM_ACCESS_TOKEN: required when GUARD_PLATFORM=intercom")
    client = build_client(
        settings.intercom_url, headers=intercom_headers(token, settings.intercom_version), transport=transport
    )
    http = HttpTarget(
        client, rate_per_second=parse_rate(settings.intercom_rate_limit), reset_headers=("X-RateLimit-Reset",)
    )

    async def inventory() -> list[str]:
        async with db.session() as session:
            rows = await session.exec(
                select(TrackedWorkflow.workflow_id)
                .where(TrackedWorkflow.target == "intercom")
                .order_by(col(TrackedWorkflow.id))
            )
            return list(rows)

    return IntercomPlatform(http, inventory=inventory)


def _secret(value) -> str | None:  # type: ignore[no-untyped-def]
    return value.get_secret_value() if value is not None else None


BUILDERS: dict[str, Builder] = {"sandbox": _sandbox, "zendesk": _zendesk, "intercom": _intercom}
