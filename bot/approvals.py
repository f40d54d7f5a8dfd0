"""Who may decide a change request. Fails closed: no approvers configured means nobody may approve."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.errors import PermissionDenied
from bot.models import ChangeRequest
from bot.settings import Settings

IsMember = Callable[[str, list[str]], Awaitable[bool]]


async def authorize_decision(
    settings: Settings, request: ChangeRequest, user_id: str, *, approve: bool, is_member: IsMember
) -> None:
    """Raise PermissionDenied, saying why, unless `user_id` may approve (or reject) `request`."""
    if not approve and user_id == request.requester:
        return  # withdrawing your own request is always allowed
    if not settings.guard_approvers:
        raise PermissionDenied("no approvers are configured (GUARD_APPROVERS), so nobody can approve changes")
    if approve and user_id == request.requester:
        raise PermissionDenied(
            "you asked for this change; another approver has to approve it (four-eyes rule)"
        )
    if not await is_member(user_id, settings.guard_approvers):
        raise PermissionDenied("only the approvers in GUARD_APPROVERS can decide change requests")


async def authorize_retry(settings: Settings, user_id: str, *, is_member: IsMember) -> None:
    """Retrying failed changes continues an approved plan: any approver may, the requester included."""
    if not settings.guard_approvers or not await is_member(user_id, settings.guard_approvers):
        raise PermissionDenied("only the approvers in GUARD_APPROVERS can retry failed changes")


async def restore_needs_approval(settings: Settings, requester: str, *, is_member: IsMember) -> bool:
    """GUARD_RESTORE_APPROVAL: `required` (default), `oncall` (on-call may restore alone), `none`."""
    policy = settings.guard_restore_approval
    if policy == "none":
        return False
    if policy == "oncall":
        return not (settings.guard_oncall and await is_member(requester, settings.guard_oncall))
    return True
