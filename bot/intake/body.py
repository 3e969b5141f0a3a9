"""What a `POST /api/v1/requests` body may say, checked field by field: the same id and reason
rules as the slash command (bot/sfox/userid.py, bot/policy/reasons.py), each problem naming its
field; and who the request records as its requester. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from bot.policy import reasons
from bot.policy.rules import Policy
from bot.sfox.userid import InvalidUserId, parse_user_id
from bot.slack.ids import SLACK_USER_ID
from bot.webhooks.destinations import AllowedHosts, Refused, destination

# Who `requests.requested_by` names for a request asked through the intake API without a
# `slack_user_id`: never a Slack user id (those are upper case), so the two-person rule finds no
# approver in it and any approver under the policy may approve; the asking system is kept in
# `requests.requested_via`. With `slack_user_id` (issue 32), that person is the requester: the
# two-person rule (bot/policy/rules.py, and its SQL defence) never lets them approve it.
INTAKE_REQUESTER = "intake-api"
SLACK_USER_FIELD = "slack_user_id"
FIELDS = ("sfox_user_id", "reason", "requested_by", SLACK_USER_FIELD, "callback_url")
MAX_REQUESTED_BY = 100
MAX_CALLBACK_URL = 2000
MAX_KEY = 255


@dataclass(frozen=True)
class IntakeAsk:
    """A valid body: what to ask, for whom, and where to call back (None: nowhere)."""

    sfox_user_id: str
    reason: str
    requested_by: str  # the system asking, kept as `requests.requested_via`
    callback_url: str | None
    body_hash: str  # of the canonical JSON: the same request, however it is spaced
    slack_user_id: str | None = None  # the Slack user it acts for

    @property
    def requester(self) -> str:
        """Who the request records as its requester (`requests.requested_by`): the Slack user it
        acts for, who may then never approve it, or the system (`INTAKE_REQUESTER`)."""
        return self.slack_user_id or INTAKE_REQUESTER


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
    slack_user = data.get(SLACK_USER_FIELD)
    problem = slack_user_problem(slack_user, policy)
    if problem:
        return BadBody(SLACK_USER_FIELD, problem)
    callback = data.get("callback_url")
    if callback is not None:
        problem = callback_problem(callback, callback_hosts)
        if problem:
            return BadBody("callback_url", problem)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return IntakeAsk(user_id, reason, by, callback, digest, slack_user)


def slack_user_problem(value: object, policy: Policy) -> str | None:
    """Why `slack_user_id` cannot name the person a request acts for: not a Slack user id, or
    missing where the policy requires it (`intake: {require_slack_user: true}`)."""
    if value is None:
        if policy.intake_require_slack_user:
            return (
                "required here (the policy's intake: require_slack_user): the Slack user id "
                "(U… or W…) of the person the request acts for"
            )
        return None
    if not isinstance(value, str) or not SLACK_USER_ID.fullmatch(value):
        return "must be a Slack user id like U012ABCDEF (U… or W…): the person the request acts for"
    return None


def callback_problem(url: object, hosts: AllowedHosts = frozenset()) -> str | None:
    """Why `url` cannot be called back, as far as the URL alone says (bot/webhooks/destinations.py:
    https, no credentials, not an address the bot must not call, a listed host when
    SFOX_INTAKE_CALLBACK_HOSTS is set); the addresses its name resolves to are checked when it
    is sent."""
    target = destination(url, hosts, MAX_CALLBACK_URL)
    return target.problem if isinstance(target, Refused) else None
