"""Shared fixtures: a migrated database (SQLite always, PostgreSQL when
MIGRATION_GUARD_TEST_DATABASE_URL is set), Settings built directly, Deps over a platform."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db import async_url, connect, upgrade
from bot.deps import Deps
from bot.platforms import build_platform
from bot.settings import Settings
from tests.fakes.zendesk import FakeZendesk

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SPECS = SHARED / "specs"
PG_URL = os.environ.get("MIGRATION_GUARD_TEST_DATABASE_URL")

requires_specs = pytest.mark.skipif(
    not SPECS.is_dir(), reason=f"the vendor specs live in {SPECS}, beside the checkout, not in a clone"
)

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


async def _fresh_postgres() -> tuple[str, Callable[[], Any]]:
    """A new empty database per test on the server CI points us at; dropped afterwards."""
    assert PG_URL is not None
    name = f"mg_test_{secrets.token_hex(6)}"
    admin = create_async_engine(async_url(PG_URL), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    async def drop() -> None:
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

    return url, drop


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database on each backend."""
    if request.param == "postgres":
        if not PG_URL:
            pytest.skip("PostgreSQL tests need MIGRATION_GUARD_TEST_DATABASE_URL (.ci/run sets it)")
        url, drop = await _fresh_postgres()
        await upgrade(url)
        yield url
        await drop()
        return
    url = f"sqlite:///{tmp_path / 'guard.db'}"
    await upgrade(url)
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'guard.db'}"


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings as a test means them: nothing read from this machine's environment or .env."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "slack_bot_token": "xoxb-test-token",
        "slack_signing_secret": "test-signing-secret",
        "slack_app_token": None,
        "guard_channel": "C0MIGRATION",
        "guard_approvers": "UMANAGER1,SAPPROVERS",
        "guard_oncall": "UONCALL1",
        "guard_api_token": "test-api-token",
        "guard_platform": "sandbox",
        "zendesk_url": None,
        "zendesk_subdomain": None,
        "zendesk_email": None,
        "zendesk_api_token": None,
        "zendesk_oauth_token": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def make_deps(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> Deps:
    db = connect(settings.database_url)
    return Deps(settings=settings, db=db, platform=build_platform(settings, db, transport))


@pytest.fixture
async def sandbox_deps(database_url: str) -> AsyncIterator[Deps]:
    deps = await make_deps(make_settings(database_url))
    yield deps
    await deps.aclose()


@pytest.fixture
def fake_zendesk() -> FakeZendesk:
    fake = FakeZendesk(rate_limit=100_000)
    return fake


def zendesk_settings(database_url: str, base_url: str = "http://zendesk.test", **overrides: Any) -> Settings:
    return make_settings(
        database_url,
        guard_platform="zendesk",
        zendesk_url=base_url,
        zendesk_email="agent@example.com",
        zendesk_api_token="test-api-token",
        zendesk_rate_limit="100000/min",
        **overrides,
    )


@pytest.fixture
async def zendesk_deps(database_url: str, fake_zendesk: FakeZendesk) -> AsyncIterator[Deps]:
    """Deps on the Zendesk adapter, talking to the fake in-process."""
    deps = await make_deps(zendesk_settings(database_url), httpx.ASGITransport(app=fake_zendesk))
    yield deps
    await deps.aclose()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`cli.main` configures logging for the process; put the root logger back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:], root.level = handlers, level
