"""Helpers for the second-factor tests (issue 18): a bot with step-up on, the codes its
authenticator would show, enrolment through `/sfox-deactivate mfa`, the Approve code modal."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from bot.audit import verify as audit_verify
from bot.mfa import totp
from tests.conftest import Bot

MFA_KEY = "mfa-test-key-0123456789abcdefghijklmnop"


def now(bot: Bot) -> datetime:
    return bot.runtime.workflow.now()


def code(secret: str, bot: Bot, steps: int = 0) -> str:
    """The code an authenticator shows `steps` steps after the bot's now."""
    return totp.code_at(secret, now(bot) + timedelta(seconds=totp.STEP_SECONDS * steps))


def enrol(bot: Bot, user: str) -> str:
    """Run `/sfox-deactivate mfa`, read the secret off the modal, type its code; the secret."""
    response = bot.driver.command(user, "mfa")
    assert response.status_code == 200 and response.content in (b"", b"null"), response.text
    modal = bot.driver.modal_for(response.extensions["response_name"])
    assert modal is not None and modal["callback_id"] == "sfox_mfa_enrol"
    shown = json.dumps(modal["blocks"])
    secret = re.search(r"secret=([A-Z2-7]+)", shown).group(1)
    assert f"`{secret}`" in shown  # the key itself, for typing, and the otpauth URI
    assert "otpauth://totp/" in shown
    assert secret not in (modal.get("private_metadata") or "")  # it travels sealed
    answer = bot.driver.submit_view(user, modal, {"first_code": code(secret, bot)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["response_action"] == "update", answer.json()
    assert secret not in answer.text  # the confirmation replaces the view that showed it
    return secret


def approve_modal(bot: Bot, user: str, record_id: int, ts: str) -> tuple[dict, str]:
    response = bot.driver.click(user, "sfox_approve", str(record_id), ts, confirm=False)
    assert response.status_code == 200
    name = response.extensions["response_name"]
    modal = bot.driver.modal_for(name)
    assert modal is not None, "no code modal was opened"
    return modal, name


def error_of(response) -> str:
    body = response.json()
    assert body["response_action"] == "errors", body
    return body["errors"]["code"]


def approved_events(bot: Bot, request_id: int) -> list:
    return [e for e in bot.store.events_for(request_id) if e.kind == "approved"]


def person_events(bot: Bot) -> list[dict]:
    return [e for e in audit_verify.export_rows(bot.store.engine) if e["request_id"] is None]


def stepped_bot(make_bot, **overrides: str) -> Bot:
    """A bot with SFOX_STEP_UP=totp and its key (and `overrides`)."""
    return make_bot(SFOX_STEP_UP="totp", SFOX_MFA_KEY=MFA_KEY, **overrides)
