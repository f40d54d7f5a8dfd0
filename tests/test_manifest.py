"""manifest.yml: what users paste into Slack, validated offline against Slack's published schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource

from bot import ids
from bot.manifest import load_manifest, render_manifest
from tests.conftest import REPO, SPECS, requires_specs

SCHEMA_DIR = SPECS / "slack"
REMOTE = "https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/"


def validator() -> jsonschema.Validator:
    """The dispatcher schema refers to its versions by URL; serve them from the local copies."""
    resources = []
    for version in ("1.0.0", "2.0.0"):
        schema = json.loads((SCHEMA_DIR / f"manifest.schema.{version}.json").read_text())
        resources.append((f"{REMOTE}manifest.schema.{version}.json", Resource.from_contents(schema)))
    root = json.loads((SCHEMA_DIR / "manifest.schema.json").read_text())
    cls = jsonschema.validators.validator_for(root)
    return cls(root, registry=Registry().with_resources(resources))


@requires_specs
@pytest.mark.parametrize("url", [None, "https://guard.example.com"])
def test_manifest_validates_against_slacks_schema(url):
    errors = list(validator().iter_errors(yaml.safe_load(render_manifest(url))))
    assert errors == [], [e.message for e in errors]


@requires_specs
def test_schema_check_catches_a_broken_manifest():
    broken = load_manifest()
    broken["features"]["slash_commands"][0]["command"] = "migration"  # must start with /
    assert list(validator().iter_errors(broken))


def test_repository_manifest_equals_what_the_command_prints():
    assert (REPO / "manifest.yml").read_text() == render_manifest()
    printed = subprocess.run(
        [sys.executable, "-m", "bot.cli", "manifest"], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert printed == render_manifest()


def test_manifest_declares_what_the_code_uses():
    manifest = load_manifest()
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [ids.SLASH_COMMAND]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    code = "\n".join(p.read_text() for p in (REPO / "bot").rglob("*.py"))
    uses = {
        "commands": "app.command(",
        "chat:write": "chat_postMessage(",
        "files:write": "files_upload_v2(",
        "usergroups:read": "usergroups_users_list(",
    }
    for scope, call in uses.items():
        assert scope in scopes and call in code, scope
    assert scopes <= {*uses, "chat:write.public"}, "no scope the code does not use"


def test_http_manifest_points_every_request_url_at_slack_events():
    manifest = yaml.safe_load(render_manifest("https://guard.example.com/"))
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["settings"]["interactivity"]["request_url"] == "https://guard.example.com/slack/events"
    assert manifest["features"]["slash_commands"][0]["url"] == "https://guard.example.com/slack/events"
    with pytest.raises(ValueError, match="https://HOST"):
        render_manifest("http://insecure.example.com")


def test_manifest_ships_inside_the_package():
    import bot

    assert (Path(bot.__file__).parent / "manifest.yml").is_file()
