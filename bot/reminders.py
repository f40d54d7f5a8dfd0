"""Reminders: rows in the database are the truth; the scheduler only provides the clock.

Hook points called by the engine inside its own transactions (filled in by the reminders work):
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.deps import Deps
from bot.models import ChangeRequest, GuardStatus


async def on_request_created(session: AsyncSession, deps: Deps, request: ChangeRequest) -> None:
    """A pending request: nudge approvers after 30 min, expire at GUARD_APPROVAL_TTL."""


async def on_request_decided(session: AsyncSession, deps: Deps, request: ChangeRequest) -> None:
    """Approved or rejected: its approval nudge and expiry are no longer due."""


async def on_guard_changed(session: AsyncSession, deps: Deps, state: GuardStatus, request: ChangeRequest) -> None:
    """Paused: schedule restore reminders (and the planned end of `--for`). Live: cancel them all."""
