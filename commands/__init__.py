"""Every subcommand of `/migration` (and of the CLI), registered here explicitly."""

from __future__ import annotations

from types import ModuleType

from commands import help, history, pause, restore, snapshot, status, track, untrack

REGISTRY: dict[str, ModuleType] = {
    "help": help,
    "snapshot": snapshot,
    "pause": pause,
    "restore": restore,
    "status": status,
    "history": history,
    "track": track,
    "untrack": untrack,
}
