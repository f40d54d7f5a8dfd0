"""The Alembic migrations build exactly the schema the models describe, on each backend, and the
console script can create the database on a fresh directory."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import bot.models  # noqa: F401  (registers every table, the sandbox's included)
from bot.db import alembic_config, async_url, upgrade
from tests.test_cli import SCRIPT, bare_env


async def schema_differences(url: str) -> tuple[list[Any], str | None]:
    """(autogenerate's differences between the database and the models, the database's revision)."""

    def compare(connection: sa.Connection) -> tuple[list[Any], str | None]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, SQLModel.metadata), context.get_current_revision()

    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def test_upgrade_head_builds_exactly_the_models_schema(database_url: str) -> None:
    """`database_url` is a fresh database that `alembic upgrade head` has just run on."""
    differences, revision = await schema_differences(database_url)
    assert differences == []
    assert revision == head()


async def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "base")
    engine = create_async_engine(async_url(database_url))
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda c: sa.inspect(c).get_table_names())
    await engine.dispose()
    assert set(tables) <= {"alembic_version"}, "downgrade drops every table"
    await upgrade(database_url)
    assert (await schema_differences(database_url))[0] == []


async def test_db_upgrade_from_the_console_script_on_an_empty_directory(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "db",
        "upgrade",
        cwd=tmp_path,
        env=bare_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert "up to date" in out.decode()
    database = tmp_path / "migration-guard.db"
    with closing(sqlite3.connect(database)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {table.name for table in SQLModel.metadata.sorted_tables} <= tables
    assert (await schema_differences(f"sqlite:///{database}"))[0] == []
