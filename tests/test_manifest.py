"""`app.yaml`, the Slack app manifest: the slash command and interactivity point at the bot's one
endpoint, with the scopes the bot's Web API calls need."""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parent.parent / "app.yaml"


def test_manifest_declares_the_command_interactivity_and_scopes():
    manifest = yaml.safe_load(MANIFEST.read_text())
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/sfox-deactivate"
    assert command["url"].endswith("/slack/events")
    assert "<sfox_user_id>" in command["usage_hint"]
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"] == command["url"]
    assert {"commands", "chat:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    assert manifest["settings"]["socket_mode_enabled"] is False
