"""A missing or malformed setting stops the program with one line naming it and exit status 2;
secrets never appear in what it prints."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import cli
from tests.test_cli import SCRIPT, bare_env, clear_settings_env

SECRET = "supersecret123"
SECRET_SETTINGS = (
    "ZENDESK_API_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "GUARD_API_TOKEN",
    "INTERCOM_ACCESS_TOKEN",
)

BAD = [
    ({"GUARD_REMIND_EVERY": "soon"}, "GUARD_REMIND_EVERY"),
    ({"GUARD_APPROVAL_TTL": "0h"}, "GUARD_APPROVAL_TTL"),
    ({"GUARD_APPROVERS": "bob"}, "GUARD_APPROVERS"),
    ({"GUARD_ONCALL": "U123,@alice"}, "GUARD_ONCALL"),
    ({"GUARD_ESCALATE_AFTER": "0"}, "GUARD_ESCALATE_AFTER"),
    ({"GUARD_IMPORT_TAG": "two words"}, "GUARD_IMPORT_TAG"),
    ({"PORT": "abc"}, "PORT"),
    ({"ZENDESK_RATE_LIMIT": "fast"}, "ZENDESK_RATE_LIMIT"),
    ({"GUARD_PLATFORM": "nope"}, "GUARD_PLATFORM"),
    ({"GUARD_PLATFORM": "zendesk"}, "ZENDESK_SUBDOMAIN or ZENDESK_URL"),
    ({"GUARD_PLATFORM": "zendesk", "ZENDESK_SUBDOMAIN": "acme"}, "ZENDESK_EMAIL and ZENDESK_API_TOKEN"),
    ({"GUARD_PLATFORM": "zendesk", "ZENDESK_URL": "ftp://zendesk.test"}, "ZENDESK_URL"),
    ({"GUARD_PLATFORM": "intercom"}, "INTERCOM_ACCESS_TOKEN"),
]


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """No setting from this machine, an empty working directory, the root logger put back."""
    clear_settings_env(monkeypatch, tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield monkeypatch
    root.handlers[:], root.level = handlers, level


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = cli.main(list(args))
    captured = capsys.readouterr()
    return status, captured.out + captured.err


@pytest.mark.parametrize(
    ("env", "named"), BAD, ids=[",".join(f"{k}={v}" for k, v in env.items()) for env, _ in BAD]
)
def test_a_bad_setting_stops_with_one_line_naming_it(
    clean: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        clean.setenv(name, value)
    status, output = run_main(capsys, "status")
    assert status == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("migration-guard: ") and named in lines[0]


def test_a_bad_setting_in_dot_env_is_reported_the_same_way(
    clean: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("GUARD_REMIND_EVERY=whenever\n")
    status, output = run_main(capsys, "status")
    assert status == 2
    assert output.strip() == (
        "migration-guard: setting GUARD_REMIND_EVERY: 'whenever' is not a duration (write 90s, 15m, 4h or 1d)"
    )


@pytest.mark.parametrize(
    "env",
    [
        {"GUARD_REMIND_EVERY": "soon"},
        {"PORT": "abc"},
        {"GUARD_PLATFORM": "zendesk", "ZENDESK_URL": "http://zendesk.test"},  # token without email
        {"GUARD_PLATFORM": "zendesk", "ZENDESK_URL": "ftp://zendesk.test", "ZENDESK_EMAIL": "a@b.c"},
    ],
    ids=["bad duration", "bad port", "token without email", "bad url"],
)
def test_secrets_are_never_printed(
    clean: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    for name in SECRET_SETTINGS:
        clean.setenv(name, SECRET)
    for name, value in env.items():
        clean.setenv(name, value)
    status, output = run_main(capsys, "status")
    assert status == 2, output
    assert SECRET not in output


async def test_the_console_script_exits_2_without_printing_the_secret(tmp_path: Path) -> None:
    env = {**bare_env(), "ZENDESK_API_TOKEN": SECRET, "GUARD_PLATFORM": "zendesk", "PORT": "abc"}
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT), "status", cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = (await asyncio.wait_for(process.communicate(), 60))[0].decode()
    assert process.returncode == 2
    assert output.startswith("migration-guard: setting PORT: ") and output.count("\n") == 1, output
    assert SECRET not in output


def test_an_unsupported_database_url_is_one_line_and_exit_2(
    clean: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean.setenv("DATABASE_URL", f"mysql://user:{SECRET}@db.example/guard")
    status, output = run_main(capsys, "status")
    assert status == 2
    assert "DATABASE_URL" in output and SECRET not in output
