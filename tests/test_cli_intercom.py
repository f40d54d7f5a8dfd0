"""Break glass on Intercom: track, pause --yes lists the manual steps, confirm ticks them (checked
against the fake Intercom over a socket), and the guard is paused only once all are done."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.intercom import SKIP_REASON, FakeIntercom, serve_in_thread, specs_available
from tests.test_cli import clear_settings_env, main

pytestmark = pytest.mark.skipif(not specs_available(), reason=SKIP_REASON)


@pytest.fixture
def intercom_cli(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> Iterator[FakeIntercom]:
    fake = FakeIntercom(token="test-token")
    fake.add_workflow("201", "Auto-reply", state="live")
    fake.add_workflow("202", "CSAT survey", state="live")
    clear_settings_env(monkeypatch, tmp_path)
    with serve_in_thread(fake) as url:
        for name, value in {
            "DATABASE_URL": database_url,
            "GUARD_PLATFORM": "intercom",
            "INTERCOM_URL": url,
            "INTERCOM_ACCESS_TOKEN": "test-token",
        }.items():
            monkeypatch.setenv(name, value)
        yield fake


async def test_manual_steps_from_the_shell(
    intercom_cli: FakeIntercom, capsys: pytest.CaptureFixture[str]
) -> None:
    await main(capsys, "track", "201", "202")
    output = await main(capsys, "pause", "--yes")
    steps = dict((name, int(step)) for step, name in re.findall(r"step (\d+): (.+?)  ", output))
    assert set(steps) == {"Auto-reply", "CSAT survey"}, output

    output = await main(capsys, "confirm", str(steps["Auto-reply"]))
    assert "NOT done: marked paused, the platform says live" in output
    assert "pausing" in await main(capsys, "status")

    intercom_cli.set_state("201", "paused")
    intercom_cli.set_state("202", "paused")
    output = await main(capsys, "confirm", str(steps["Auto-reply"]), str(steps["CSAT survey"]))
    assert "verified" in output and "no steps left open" in output
    assert "Guard:     paused" in await main(capsys, "status")
