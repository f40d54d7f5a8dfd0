"""The one Protocol every platform adapter implements, and the dataclasses it speaks.

An adapter reads a helpdesk's automations and writes a desired state back. It never decides what
to change: the engine plans (with the adapter's pure `edit`) and journals; the adapter only talks
to the platform. Adapters import nothing from `bot` or `commands` and never read the environment.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class Capability(StrEnum):
    TOGGLE = "toggle"  # the API can switch it on and off
    EXEMPT = "exempt"  # the API can edit its conditions to skip records carrying the import tag
    MANUAL = "manual"  # the API cannot change it: a person does, the bot keeps the checklist


class Action(StrEnum):
    DISABLE = "disable"
    ENABLE = "enable"
    EXEMPT = "exempt"
    UNEXEMPT = "unexempt"
    MANUAL = "manual"  # a person pauses (or, on restore, resumes) it by hand


INVERSE: Mapping[Action, Action] = {
    Action.DISABLE: Action.ENABLE,
    Action.ENABLE: Action.DISABLE,
    Action.EXEMPT: Action.UNEXEMPT,
    Action.UNEXEMPT: Action.EXEMPT,
    Action.MANUAL: Action.MANUAL,
}


@dataclass(frozen=True)
class Automation:
    """One automation as the platform has it now.

    `definition` is the platform's full definition with volatile fields (timestamps, URLs,
    usage counters) removed, so two reads of an untouched automation compare equal.
    `enabled` is None where the platform has no on/off flag (Zendesk SLA policies).
    """

    kind: str
    id: str
    name: str
    enabled: bool | None
    definition: dict[str, Any] = field(compare=True, hash=False)
    updated_at: str | None = field(default=None, compare=False)
    url: str | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.id)


class PlatformError(Exception):
    """The platform refused or failed a call after retries. `status` is the HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class AutomationGone(PlatformError):
    """The automation no longer exists on the platform (deleted since the snapshot)."""


class EditNotPossible(PlatformError):
    """The requested edit cannot be expressed for this automation (e.g. exempt on a toggle-only kind)."""


@dataclass(frozen=True)
class KindInfo:
    """What a platform calls one kind of automation and what its API allows on it."""

    name: str  # our key, e.g. "trigger"
    label: str  # the platform's word for people, e.g. "Trigger"
    capabilities: frozenset[Capability]


@runtime_checkable
class Platform(Protocol):
    """A helpdesk account the guard can read and (where the API allows) change."""

    name: str  # registry key, e.g. "zendesk"
    display_name: str  # "Zendesk", "Sandbox (sample data, no real helpdesk)"
    kinds: Mapping[str, KindInfo]

    async def list_automations(self) -> list[Automation]:
        """Every automation of every kind, with full definitions."""
        ...

    async def get_automation(self, kind: str, automation_id: str) -> Automation:
        """Re-read one automation; raises AutomationGone if it was deleted."""
        ...

    def edit(self, automation: Automation, action: Action, tag: str) -> Automation:
        """Pure: the automation as it will be after `action`. Raises EditNotPossible."""
        ...

    async def write(self, desired: Automation) -> Automation:
        """Make the platform hold `desired` (full replace where the platform needs it); returns
        the automation as the platform answered."""
        ...

    async def aclose(self) -> None: ...


def is_exempt(conditions: list[dict[str, Any]], tag: str) -> bool:
    return exemption_condition(tag) in conditions


def exemption_condition(tag: str) -> dict[str, Any]:
    """The condition that makes a Zendesk-style rule skip records carrying the import tag."""
    return {"field": "current_tags", "operator": "not_includes", "value": tag}


def with_exemption(conditions: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    if is_exempt(conditions, tag):
        return copy.deepcopy(conditions)
    return [*copy.deepcopy(conditions), exemption_condition(tag)]


def without_exemption(conditions: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    """Remove exactly one copy of our condition (the one we added) and nothing else."""
    result = copy.deepcopy(conditions)
    target = exemption_condition(tag)
    for index in range(len(result) - 1, -1, -1):
        if result[index] == target:
            del result[index]
            break
    return result
