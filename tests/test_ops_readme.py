"""The README's settings table and Deploy section stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from bot.config import setting_names

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_settings_table_names_every_setting_the_code_reads():
    rows = [line for line in section("Settings").splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}
    assert set(setting_names()) <= documented, set(setting_names()) - documented
    assert documented <= set(setting_names()), documented - set(setting_names())


def test_deploy_section_covers_what_ops_need():
    deploy = section("Deploy")
    for heading in (
        "### Socket Mode in 5 steps",
        "### HTTP mode behind gunicorn",
        "### PostgreSQL for several replicas",
        "### The release step",
    ):
        assert heading in deploy
    steps = re.findall(r"^(\d)\. ", deploy.split("### Socket Mode in 5 steps")[1].split("###")[0], re.M)
    assert steps == ["1", "2", "3", "4", "5"]
    for needle in (
        "bot.wsgi:create_app()",
        "sfox-bot migrate",
        "postgresql+psycopg://",
        "/readyz",
        "SIGTERM",
    ):
        assert needle in deploy
