"""What every command shares: the parser that raises UsageError, the Context it runs in, the Reply."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from bot.deps import Deps
from bot.errors import UsageError

Surface = Literal["slack", "cli"]


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as a UsageError instead of exiting the process."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("add_help", False)
        kwargs.setdefault("exit_on_error", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\nusage: {self.format_usage().removeprefix('usage: ').strip()}")


def split(text: str) -> list[str]:
    """Split a slash command's text like a shell would; Slack turns quotes into curly ones."""
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    try:
        return shlex.split(text)
    except ValueError as error:
        raise UsageError(f"could not read the options: {error}") from None


@dataclass
class Context:
    deps: Deps
    actor: str  # a Slack user id, or "cli:<os user>"
    surface: Surface
    confirmed: bool = False  # CLI --yes: act now (break-glass, no approval card)


@dataclass
class Reply:
    """A command's answer. `kind` tells the surface how to render `data`."""

    text: str
    kind: str = "message"
    data: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
