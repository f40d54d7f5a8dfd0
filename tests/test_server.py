"""`migration-guard serve` as users run it: a real process, a real socket, signed requests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.slack import DEFAULT_BOT_TOKEN, FakeSlack, serve_in_thread
from tests.slack_signing import signed_headers, slash_command_body

SECRET = "server-test-secret"
CLI = str(Path(sys.executable).with_name("migration-guard"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """Only what the test sets: nothing of this machine's own configuration leaks in."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {**keep, **values}


def wait_for_health(url: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(0.1)
    return False


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    with serve_in_thread(fake):
        yield fake


@pytest.fixture
def server(tmp_path: Path, slack: FakeSlack) -> Iterator[str]:
    port = free_port()
    env = clean_env(
        tmp_path,
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack.api_url,
        GUARD_CHANNEL="C0MIGRATION",
        GUARD_APPROVERS="U0MANAGER1",
        PORT=str(port),
    )
    process = subprocess.Popen(
        [CLI, "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_for_health(url):
            process.kill()
            pytest.fail(f"serve did not start:\n{process.stdout.read() if process.stdout else ''}")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, "SIGTERM stops the server cleanly"


def test_serve_runs_on_sqlite_and_the_sandbox_with_only_slack_settings(server, slack, tmp_path):
    health = httpx.get(f"{server}/healthz").json()
    assert health == {"ok": True, "platform": "sandbox", "sandbox": True}
    assert (tmp_path / "migration-guard.db").is_file(), (
        "the embedded SQLite default, in the working directory"
    )

    body = slash_command_body(
        text="status", user_id="U0REQUESTER", response_url=slack.response_url(user_id="U0REQUESTER")
    )
    started = time.perf_counter()
    answer = httpx.post(f"{server}/slack/events", content=body, headers=signed_headers(SECRET, body))
    assert answer.status_code == 200 and time.perf_counter() - started < 1.0
    deadline = time.monotonic() + 10
    while not slack.response_url_posts and time.monotonic() < deadline:
        time.sleep(0.05)
    [reply] = slack.response_url_posts
    assert "live" in reply["text"] and "Sandbox" in str(reply["blocks"])

    forged = httpx.post(
        f"{server}/slack/events", content=body, headers=signed_headers("not-the-secret", body)
    )
    assert forged.status_code == 401


@pytest.mark.parametrize("missing", ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "GUARD_CHANNEL"])
def test_serve_refuses_to_start_without_a_required_setting(tmp_path, missing):
    env = clean_env(
        tmp_path,
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_SIGNING_SECRET="s",
        GUARD_CHANNEL="C0MIGRATION",
        PORT=str(free_port()),
    )
    del env[missing]
    result = subprocess.run([CLI, "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], "one line"
    assert missing in result.stderr


def test_socket_mode_runs_in_the_same_process_when_an_app_token_is_set(tmp_path, slack):
    """With SLACK_APP_TOKEN, serve also connects over Socket Mode and answers commands sent there."""
    port = free_port()
    env = clean_env(
        tmp_path,
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_APP_TOKEN=slack.app_token,
        SLACK_API_URL=slack.api_url,
        GUARD_CHANNEL="C0MIGRATION",
        PORT=str(port),
    )
    process = subprocess.Popen(
        [CLI, "serve"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert slack.socket_connected.wait(30), "serve opened a Socket Mode connection"
        assert wait_for_health(f"http://127.0.0.1:{port}"), "HTTP runs too"
        payload = {
            "command": "/migration",
            "text": "help",
            "user_id": "U0REQUESTER",
            "channel_id": "C0MIGRATION",
            "team_id": "T0FAKETEAM",
            "response_url": slack.response_url(user_id="U0REQUESTER"),
            "trigger_id": "1.2.3",
        }
        slack.socket_send(
            {
                "envelope_id": "env-1",
                "type": "slash_commands",
                "payload": payload,
                "accepts_response_payload": True,
            }
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (slack.socket_acks and slack.response_url_posts):
            time.sleep(0.05)
        [ack] = slack.socket_acks
        assert ack["envelope_id"] == "env-1" and "/migration help" in ack["payload"]["text"]
        assert "/migration pause" in slack.response_url_posts[0]["text"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    assert process.returncode == 0
