"""One apply at a time per target, across processes, released by the OS if the holder dies.

PostgreSQL: a session-level advisory lock on a connection held for the whole apply (several
replicas on one database). SQLite: an exclusive `flock` on a file beside the database (SQLite
lives on one machine, so every process that can open it can see the lock file).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa

from bot.db import Database
from bot.errors import ConflictError


def lock_key(target: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock."""
    digest = hashlib.blake2b(f"migration-guard:{target}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@asynccontextmanager
async def apply_lock(db: Database, target: str) -> AsyncIterator[None]:
    """Hold the target's apply lock or raise ConflictError at once (never wait behind another apply)."""
    if db.is_sqlite:
        async with _file_lock(_lock_path(db, target), target):
            yield
    else:
        async with _advisory_lock(db, target):
            yield


@asynccontextmanager
async def _advisory_lock(db: Database, target: str) -> AsyncIterator[None]:
    key = lock_key(target)
    async with db.engine.connect() as connection:
        got = (await connection.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar()
        await connection.commit()
        if not got:
            raise ConflictError(f"another apply is already running for {target}; try again when it ends")
        try:
            yield
        finally:
            await connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            await connection.commit()


def _lock_path(db: Database, target: str) -> Path:
    base = db.sqlite_file
    safe = "".join(ch if ch.isalnum() else "_" for ch in target)
    if base is None:  # in-memory database: the lock only needs to hold inside this process
        return Path(tempfile.gettempdir()) / f"migration-guard-{os.getpid()}-{id(db)}-{safe}.lock"
    return base.with_name(f"{base.name}.{safe}.lock")


@asynccontextmanager
async def _file_lock(path: Path, target: str) -> AsyncIterator[None]:
    handle = await asyncio.to_thread(open, path, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(
                f"another apply is already running for {target}; try again when it ends"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()
