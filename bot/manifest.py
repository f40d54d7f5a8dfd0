"""The Slack app manifest: Socket Mode as shipped, or HTTP mode with request URLs for a public host."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

MANIFEST = Path(__file__).with_name("manifest.yml")


def load_manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def render_manifest(url: str | None = None) -> str:
    """Socket Mode (the file as shipped), or with `url` the HTTP-mode manifest whose request URLs
    point at `https://HOST/slack/events`."""
    if url is None:
        return MANIFEST.read_text()
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"--url must be the bot's public https://HOST, got {url!r}")
    events = f"https://{parts.netloc}{parts.path.rstrip('/')}/slack/events"
    manifest = load_manifest()
    for command in manifest["features"]["slash_commands"]:
        command["url"] = events
    manifest["settings"]["interactivity"]["request_url"] = events
    manifest["settings"]["socket_mode_enabled"] = False
    header = "# migration-guard, HTTP mode: Slack sends commands and button clicks to the URL below.\n"
    return header + yaml.safe_dump(manifest, sort_keys=False, width=110)
