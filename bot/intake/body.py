"""What a `POST /api/v1/requests` body may say, checked field by field: the same id and reason
rules as the slash command (bot/sfox/userid.py, bot/policy/reasons.py), each problem naming its
field. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from bot.policy import reasons
from bot.policy.rules import Policy
from bot.sfox.userid import InvalidUserId, parse_user_id
from bot.webhooks.destinations import AllowedHosts, Refused, destination

# Who `requests.requested_by` names for a request asked through the intake API: never a Slack
# user id (those are upper case), so the two-person rule finds no approver in it and any approver
# under the policy may approve; the asking system is kept in `requests.requested_via`.
INTAKE_REQUESTER = "intake-api"
FIELDS = ("sfox_user_id", "reason", "requested_by", "callback_url")
MAX_REQUESTED_BY = 100
MAX_CALLBACK_URL = 2000
MAX_KEY = 255


@dataclass(frozen=True)
class IntakeAsk:
    """A valid body: what to ask, for whom, and where to call back (None: nowhere)."""

    sfox_user_id: str
    reason: str
    requested_by: str
    callback_url: str | None
    body_hash: str  # of the canonical JSON: the same request, however it is spaced


@dataclass(frozen=True)
class BadBody:
    """Why a body cannot be taken: the field (or "body") and what is wrong with it."""

    field: str
    problem: str

    @property
    def error(self) -> str:
        return f"{self.field}: {self.problem}"


def key_problem(key: str | None) -> str | None:
    """Why an Idempotency-Key header cannot be used, or None."""
    if not key:
        return "Idempotency-Key: header required (a unique value per request, e.g. a UUID)"
    if len(key) > MAX_KEY or not key.isprintable():
        return f"Idempotency-Key: at most {MAX_KEY} printable characters"
    return None


def parse_body(raw: bytes, policy: Policy, callback_hosts: AllowedHosts = frozenset()) -> IntakeAsk | BadBody:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return BadBody("body", "not JSON")
    if not isinstance(data, dict):
        return BadBody("body", "must be a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        return BadBody(unknown[0], f"unknown field (the fields are {', '.join(FIELDS)})")
    user_id = data.get("sfox_user_id")
    if not isinstance(user_id, str) or not user_id:
        return BadBody("sfox_user_id", "required, a string")
    try:
        user_id = parse_user_id(user_id)
    except InvalidUserId as exc:
        return BadBody("sfox_user_id", str(exc))
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        return BadBody("reason", "must be a string")
    reason = reasons.clean_reason(reason)
    if reasons.reason_refusal(reason) is not None:
        return BadBody("reason", f"too long ({len(reason)} characters; at most {reasons.MAX_REASON})")
    if reasons.missing_reason_refusal(policy, reason) is not None:
        return BadBody("reason", "required here (SFOX_REQUIRE_REASON)")
    by = data.get("requested_by")
    if not isinstance(by, str) or not by.strip():
        return BadBody("requested_by", "required, a string naming the system or person asking")
    by = " ".join(by.split())
    if len(by) > MAX_REQUESTED_BY or not by.isprintable():
        return BadBody("requested_by", f"at most {MAX_REQUESTED_BY} printable characters")
    callback = data.get("callback_url")
    if callback is not None:
        problem = callback_problem(callback, callback_hosts)
        if problem:
            return BadBody("callback_url", problem)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return IntakeAsk(user_id, reason, by, callback, digest)


def callback_problem(url: object, hosts: AllowedHosts = frozenset()) -> str | None:
    """Why `url` cannot be called back, as far as the URL alone says (bot/webhooks/destinations.py:
    https, no credentials, not an address the bot must not call, a listed host when
    SFOX_INTAKE_CALLBACK_HOSTS is set); the addresses its name resolves to are checked when it
    is sent."""
    target = destination(url, hosts, MAX_CALLBACK_URL)
    return target.problem if isinstance(target, Refused) else None
