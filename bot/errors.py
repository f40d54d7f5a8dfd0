"""Typed errors. Each is rendered in one place per surface: bot/slack.py, bot/cli.py, bot/api.py."""

from __future__ import annotations

import secrets

from adapters.base import PlatformError

__all__ = [
    "ConflictError",
    "GuardError",
    "NotFound",
    "PermissionDenied",
    "PlatformError",
    "UsageError",
    "error_id",
]


class GuardError(Exception):
    """An error whose message is meant for the person who asked."""


class UsageError(GuardError):
    """The request itself is malformed: unknown subcommand, bad option, unknown kind."""


class PermissionDenied(GuardError):
    """The person may not do this (not an approver, own request, not on-call)."""


class NotFound(GuardError):
    """The thing asked for does not exist (request, run, snapshot)."""


class ConflictError(GuardError):
    """The state does not allow it now (a pause already in place, nothing to restore, busy)."""


def error_id() -> str:
    """A short id a person can quote to find the traceback in the logs."""
    return "err-" + secrets.token_hex(4)
