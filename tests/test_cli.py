"""The `migration-guard` console script: the sandbox round trip on a fresh directory with no
configuration, exit statuses, and restore's handling of an edit made during the pause (Zendesk)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bot import cli
from bot.settings import Settings
from tests.fakes.zendesk import FakeZendesk, serve_in_thread

SCRIPT = Path(sys.executable).with_name("migration-guard")
ACTIONS = [{"field": "notification_user", "value": ["requester_id", "Hi", "We got it"]}]


def bare_env() -> dict[str, str]:
    """What a person's shell has on a fresh machine: no setting of ours."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}


def clear_settings_env(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """Remove every environment variable Settings would read and leave `directory` (no .env) as
    the working directory, so an in-process `cli.main` sees only what the test sets."""
    names = {name.upper() for name in Settings.model_fields}
    for key in list(os.environ):
        if key.upper() in names:
            monkeypatch.delenv(key)
    monkeypatch.chdir(directory)


async def run_script(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *args,
        cwd=cwd,
        env=bare_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def definitions(path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    document = json.loads(path.read_text())
    return [(a["kind"], a["id"], a["definition"]) for a in document["automations"]]


# ---- the sandbox, from a fresh directory --------------------------------------------------------


async def test_sandbox_round_trip_on_a_fresh_directory(tmp_path: Path) -> None:
    async def script(*args: str, expect: int = 0) -> str:
        status, out, err = await run_script(*args, cwd=tmp_path)
        assert status == expect, f"migration-guard {' '.join(args)} exited {status}:\n{out}\n{err}"
        return out + err

    output = await script("status")
    assert "sandbox" in output.lower() and "live" in output
    assert (tmp_path / "migration-guard.db").is_file(), "the default database is a SQLite file here"
    await script("snapshot", "--json", "first.json")
    first = definitions(tmp_path / "first.json")
    assert len(first) >= 5 and any(enabled for _, _, enabled in _enabled(tmp_path / "first.json"))

    plan = await script("pause")
    assert "Plan only" in plan and "Nothing was changed" in plan and "disable" in plan
    assert sandbox_writes(tmp_path) == 0, "a plan changes nothing"

    applied = await script("pause", "--yes")
    assert "[sandbox]" in applied and "applied" in applied
    assert sandbox_writes(tmp_path) > 0
    refused, status = await asyncio.gather(script("pause", "--yes", expect=1), script("status"))
    assert "already in place" in refused
    assert "Guard:     paused" in status

    restored = await script("restore", "--yes")
    assert "applied" in restored and "Differs" not in restored
    await script("snapshot", "--json", "out.json")
    assert definitions(tmp_path / "out.json") == first
    assert "Guard:     live" in await script("status")


def sandbox_writes(directory: Path) -> int:
    """Writes the sandbox platform has taken, read straight from its table."""
    with closing(sqlite3.connect(directory / "migration-guard.db")) as db:
        return int(db.execute("SELECT SUM(writes) FROM sandbox_automations").fetchone()[0])


def _enabled(path: Path) -> list[tuple[str, str, bool]]:
    return [(a["kind"], a["id"], a["enabled"]) for a in json.loads(path.read_text())["automations"]]


async def test_bad_options_exit_2_with_a_message(tmp_path: Path) -> None:
    (bad_option, _, err1), (bad_kind, _, err2), (no_verb, _, err3) = await asyncio.gather(
        run_script("pause", "--mode", "nope", cwd=tmp_path),
        run_script("pause", "--only", "macro", cwd=tmp_path),
        run_script("frobnicate", cwd=tmp_path),
    )
    assert bad_option == 2 and "invalid choice: 'nope'" in err1
    assert bad_kind == 2 and "unknown kind macro" in err2 and "trigger" in err2
    assert no_verb == 2 and "invalid choice" in err3


# ---- an edit made during the pause, through the CLI (fake Zendesk over a socket) ----------------


@pytest.fixture
def zendesk_cli(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> Iterator[tuple[FakeZendesk, str]]:
    fake = FakeZendesk(rate_limit=None)
    clear_settings_env(monkeypatch, tmp_path)
    with serve_in_thread(fake) as url:
        for name, value in {
            "DATABASE_URL": database_url,
            "GUARD_PLATFORM": "zendesk",
            "ZENDESK_URL": url,
            "ZENDESK_EMAIL": "agent@example.com",
            "ZENDESK_API_TOKEN": "test-api-token",
            "ZENDESK_RATE_LIMIT": "100000/min",
        }.items():
            monkeypatch.setenv(name, value)
        yield fake, url


async def main(capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> str:
    """`migration-guard ARGS` in this process (in a worker thread: the CLI runs its own loop)."""
    status = await asyncio.to_thread(cli.main, list(args))
    captured = capsys.readouterr()
    assert status == expect, (
        f"migration-guard {' '.join(args)} exited {status}:\n{captured.out}\n{captured.err}"
    )
    return captured.out + captured.err


async def test_an_edit_during_the_pause_is_a_conflict_left_alone_then_forced(
    zendesk_cli: tuple[FakeZendesk, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, _ = zendesk_cli
    edited = fake.seed("trigger", title="CSAT survey", active=True, actions=ACTIONS)
    other = fake.seed("trigger", title="Notify requester", active=True, actions=ACTIONS)

    await main(capsys, "pause", "--yes")
    assert not fake.get("trigger", edited["id"])["active"]
    fake.edit_as_person("trigger", edited["id"], title="CSAT survey (edited during pause)")

    plan = await main(capsys, "restore")
    conflict = _line(plan, str(edited["id"]))
    assert "conflict" in conflict and "title" in conflict, plan
    assert "planned" in _line(plan, str(other["id"]))
    assert fake.total_writes() == 2, "a restore plan changes nothing"

    applied = await main(capsys, "restore", "--yes")
    assert (
        "Differs from the snapshot: CSAT survey: differs from the snapshot (edited since the pause" in applied
    )
    assert fake.get("trigger", edited["id"])["title"] == "CSAT survey (edited during pause)"
    assert fake.get("trigger", edited["id"])["active"] is False, "the person's edit is left alone"
    assert fake.write_count("trigger", edited["id"]) == 1
    assert fake.get("trigger", other["id"])["active"] is True

    await main(capsys, "pause", "--yes")
    fake.edit_as_person("trigger", other["id"], title="Notify requester (edited)")
    assert "conflict" in _line(await main(capsys, "restore"), str(other["id"]))
    assert "forced over a later edit" in _line(await main(capsys, "restore", "--force"), str(other["id"]))
    await main(capsys, "restore", "--force", "--yes")
    assert fake.get("trigger", other["id"])["title"] == "Notify requester"
    assert fake.get("trigger", other["id"])["active"] is True
    assert "live" in await main(capsys, "status")


def _line(output: str, needle: str) -> str:
    lines = [line for line in output.splitlines() if needle in line]
    assert lines, f"{needle} not in:\n{output}"
    return lines[0]
