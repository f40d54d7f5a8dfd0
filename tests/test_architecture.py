"""The import directions DESIGN.md sets: entry rooms -> commands -> core -> adapters, Slack only in
bot/slack and bot/blocks, adapters free of bot and commands."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

ENTRY = {
    "bot/cli.py",
    "bot/server.py",
    "bot/http.py",
    "bot/api.py",
    "bot/text.py",
    "bot/manifest.py",
    "bot/client.py",
}
SLACK_ROOMS = ("bot/slack/", "bot/blocks/")


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def core_modules() -> list[Path]:
    return [
        p
        for p in sources("bot")
        if rel(p) not in ENTRY and not rel(p).startswith(SLACK_ROOMS) and "/migrations/" not in rel(p)
    ]


@pytest.mark.parametrize("path", core_modules(), ids=rel)
def test_core_never_imports_slack_commands_or_entry_rooms(path: Path):
    bad = {
        name
        for name in imports(path)
        if name.startswith(
            ("slack_bolt", "slack_sdk", "commands", "bot.slack", "bot.blocks", "bot.cli", "bot.server")
        )
    }
    assert not bad, f"{rel(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sources("adapters"), ids=rel)
def test_adapters_import_nothing_from_bot_or_commands(path: Path):
    bad = {name for name in imports(path) if name.split(".")[0] in ("bot", "commands")}
    assert not bad, f"{rel(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sources("commands"), ids=rel)
def test_commands_never_import_slack(path: Path):
    bad = {
        name
        for name in imports(path)
        if name.startswith(("slack_bolt", "slack_sdk", "bot.slack", "bot.blocks"))
    }
    assert not bad, f"{rel(path)} imports {sorted(bad)}"


def test_adapters_never_read_the_environment():
    for path in sources("adapters"):
        text = path.read_text()
        assert "os.environ" not in text and "getenv" not in text, rel(path)
