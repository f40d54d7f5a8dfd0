"""Pure planning: a snapshot and options in, the list of changes out. No I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from adapters.base import INVERSE, Action, Automation, Capability, Platform
from bot.errors import UsageError

Mode = Literal["disable", "exempt"]


@dataclass(frozen=True)
class PauseOptions:
    mode: Mode = "disable"
    only: frozenset[str] = frozenset()  # kinds to guard; empty = every kind
    keep: frozenset[str] = frozenset()  # names or ids to leave running
    tag: str = "migration_import"


@dataclass(frozen=True)
class PlannedChange:
    kind: str
    automation_id: str
    name: str
    action: Action
    before: dict[str, Any]
    after: dict[str, Any]
    url: str | None = None
    status: str = "planned"
    note: str | None = None


@dataclass(frozen=True)
class RestorePlan:
    changes: list[PlannedChange]
    created_during_pause: list[dict[str, Any]] = field(default_factory=list)


def validate_options(platform: Platform, automations: Sequence[Automation], options: PauseOptions) -> None:
    """Refuse options that would silently guard the wrong things (a typo in --keep pauses it)."""
    unknown = sorted(set(options.only) - set(platform.kinds))
    if unknown:
        known = ", ".join(sorted(platform.kinds))
        raise UsageError(f"unknown kind {', '.join(unknown)} for {platform.display_name}; kinds: {known}")
    names = {a.name.casefold() for a in automations} | {a.id for a in automations}
    missing = sorted(k for k in options.keep if k.casefold() not in names and k not in names)
    if missing:
        raise UsageError(f"--keep names no automation: {', '.join(missing)}")


def plan_pause(
    platform: Platform, automations: Sequence[Automation], options: PauseOptions
) -> list[PlannedChange]:
    """What pausing means for each automation, given what the platform's API allows."""
    validate_options(platform, automations, options)
    keep = {k.casefold() for k in options.keep}
    changes = []
    for automation in automations:
        if options.only and automation.kind not in options.only:
            continue
        if automation.name.casefold() in keep or automation.id.casefold() in keep:
            continue
        action = pause_action(platform, automation, options.mode)
        if action is None:
            continue
        after = platform.edit(automation, action, options.tag)
        if after.definition == automation.definition and action != Action.MANUAL:
            continue  # already off, or already exempt
        changes.append(_planned(automation, action, after.definition))
    return changes


def pause_action(platform: Platform, automation: Automation, mode: Mode) -> Action | None:
    capabilities = platform.kinds[automation.kind].capabilities
    can_toggle = Capability.TOGGLE in capabilities
    can_exempt = Capability.EXEMPT in capabilities
    if automation.enabled is False:
        return None  # off already: nothing fires
    if mode == "exempt" and can_exempt:
        return Action.EXEMPT
    if can_toggle:
        return Action.DISABLE
    if can_exempt:
        return Action.EXEMPT  # no on/off flag (Zendesk SLA policies): exempting is the only way
    if Capability.MANUAL in capabilities:
        return Action.MANUAL
    return None


def _planned(automation: Automation, action: Action, after: dict[str, Any]) -> PlannedChange:
    return PlannedChange(
        kind=automation.kind,
        automation_id=automation.id,
        name=automation.name,
        action=action,
        before=automation.definition,
        after=after,
        url=automation.url,
    )


@dataclass(frozen=True)
class DoneChange:
    """What a finished pause did to one automation (read from its journal)."""

    kind: str
    automation_id: str
    name: str
    action: Action
    before: dict[str, Any]
    after: dict[str, Any]
    url: str | None = None


def plan_restore(
    done: Iterable[DoneChange],
    live: Mapping[tuple[str, str], Automation],
    snapshot_keys: Iterable[tuple[str, str]],
    *,
    force: bool = False,
) -> RestorePlan:
    """Revert exactly what the pause changed, and only where nobody has edited it since."""
    changes = [
        _restore_change(change, live.get((change.kind, change.automation_id)), force) for change in done
    ]
    known = set(snapshot_keys)
    created = [
        {"kind": a.kind, "id": a.id, "name": a.name, "url": a.url}
        for key, a in sorted(live.items())
        if key not in known and a.enabled
    ]
    return RestorePlan(changes=changes, created_during_pause=created)


def _restore_change(change: DoneChange, live: Automation | None, force: bool) -> PlannedChange:
    revert = INVERSE[change.action]
    if live is None:
        return _restore(change, revert, change.after, status="skipped", note="deleted since the pause")
    if change.action == Action.MANUAL:
        return _restore(change, revert, live.definition)
    if live.definition == change.after:
        return _restore(change, revert, live.definition)
    if live.definition == change.before:
        return _restore(change, revert, live.definition, status="skipped", note="already as before the pause")
    differences = describe_difference(change.after, live.definition)
    if force:
        return _restore(change, revert, live.definition, note=f"forced over a later edit: {differences}")
    return _restore(
        change, revert, live.definition, status="conflict", note=f"edited since the pause: {differences}"
    )


def _restore(
    change: DoneChange,
    action: Action,
    current: dict[str, Any],
    *,
    status: str = "planned",
    note: str | None = None,
) -> PlannedChange:
    return PlannedChange(
        kind=change.kind,
        automation_id=change.automation_id,
        name=change.name,
        action=action,
        before=current,
        after=change.before,
        url=change.url,
        status=status,
        note=note,
    )


def describe_difference(expected: Mapping[str, Any], actual: Mapping[str, Any], limit: int = 3) -> str:
    """A short human description of which top-level fields differ."""
    keys = sorted(set(expected) | set(actual))
    changed = [key for key in keys if expected.get(key) != actual.get(key)]
    shown = ", ".join(changed[:limit])
    more = f" and {len(changed) - limit} more" if len(changed) > limit else ""
    return f"{shown}{more} changed" if changed else "no difference"
