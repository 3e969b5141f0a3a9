"""The step-up: enrolling a person's authenticator, and checking the code an Approve comes with.

A code counts once: it must match the person's secret within one 30-second step either side,
its step must not have been used by them before (the replay rule, in the store's primary key),
and the person must not be locked out. Five wrong codes within ten minutes lock that person's
approvals for ten minutes (told, and audited once). A code that is not six digits is a typing
slip: it is refused but not counted as a wrong code.

This module knows nothing of Slack; each answer is a typed `Verdict` with the words to show next
to the code box (`text`). Whether an approval needs a code at all is the policy's rule
(`step_up_refusal` in bot/policy/step_up.py); this module only says whether a code is good.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from bot.mfa import totp
from bot.mfa.sealing import Sealer, Unsealable
from bot.store.db import Store
from bot.store.mfa_enrolling import MfaEnrolling
from bot.store.mfa_verifying import MfaVerifying

FACTOR = "totp"
LOCK_AFTER = 5
LOCK_WINDOW = timedelta(minutes=10)
LOCK_FOR = timedelta(minutes=10)
# How long an enrolment modal may stay open before its sealed secret is refused.
ENROLMENT_FORM_SECONDS = 30 * 60


class Verdict(Enum):
    VERIFIED = "verified"
    ENROLLED = "enrolled"
    NOT_SIX_DIGITS = "not_six_digits"
    WRONG_CODE = "wrong_code"
    REPLAYED = "replayed"
    LOCKED = "locked"
    NOT_ENROLLED = "not_enrolled"
    ALREADY_ENROLLED = "already_enrolled"
    FORM_EXPIRED = "form_expired"
    KEY_CHANGED = "key_changed"


@dataclass(frozen=True)
class Answer:
    """A verdict, and until when the person is locked out (LOCKED)."""

    verdict: Verdict
    locked_until: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.verdict in (Verdict.VERIFIED, Verdict.ENROLLED)

    @property
    def text(self) -> str:
        """The words for the person (plain text: they are shown next to the code box)."""
        until = self.locked_until.strftime("%H:%M UTC") if self.locked_until else "a few minutes from now"
        return {
            Verdict.VERIFIED: "Code accepted.",
            Verdict.ENROLLED: "Your authenticator is set up: Approve will now ask for its code.",
            Verdict.NOT_SIX_DIGITS: "Type the 6-digit code your authenticator app shows.",
            Verdict.WRONG_CODE: "That code is not valid. Type the code your authenticator shows now "
            "(check that your phone's clock is right).",
            Verdict.REPLAYED: "That code was used already. Wait for the next one and type it.",
            Verdict.LOCKED: f"Too many wrong codes: your approvals are locked until {until}. "
            "Nothing was counted.",
            Verdict.NOT_ENROLLED: "You have no second factor set up: use /sfox-deactivate mfa first.",
            Verdict.ALREADY_ENROLLED: "You are enrolled already. To set up a new authenticator, ask an "
            "operator to run `sfox-bot mfa reset` for you.",
            Verdict.FORM_EXPIRED: "This form is too old: close it and run /sfox-deactivate mfa again.",
            Verdict.KEY_CHANGED: "Your second factor cannot be read with the bot's current key "
            "(SFOX_MFA_KEY changed?): ask an operator to run `sfox-bot mfa reset` for you.",
        }[self.verdict]


class StepUp:
    """Enrolment and code checks for SFOX_STEP_UP=totp (or the policy file's `step_up: totp`)."""

    def __init__(self, store: Store, sealer: Sealer, clock: Callable[[], datetime]) -> None:
        self.enrolments = MfaEnrolling(store)
        self.codes = MfaVerifying(store)
        self.sealer = sealer
        self.now = clock

    # -- enrolment ---------------------------------------------------------------------------

    def new_enrolment(self, actor: str) -> tuple[str, str, str] | Answer:
        """(secret, otpauth URI, sealed secret) for a person's enrolment form; or why not
        (already enrolled). The secret is shown in the form only; the form carries it sealed."""
        if self.enrolments.get(actor) is not None:
            return Answer(Verdict.ALREADY_ENROLLED)
        secret = totp.new_secret()
        return secret, totp.provisioning_uri(secret, actor), self.sealer.seal(secret)

    def enrol(self, actor: str, sealed: str, code: str) -> Answer:
        """Enrol `actor` with the secret sealed in their form, if `code` is one of its codes."""
        if totp.normalise(code) is None:
            return Answer(Verdict.NOT_SIX_DIGITS)
        try:
            secret = self.sealer.open(sealed, max_age_seconds=ENROLMENT_FORM_SECONDS)
        except Unsealable:
            return Answer(Verdict.FORM_EXPIRED)
        now = self.now()
        step = totp.matching_step(secret, code, now)
        if step is None:
            return Answer(Verdict.WRONG_CODE)
        if not self.enrolments.enrol(actor, sealed, step, now):
            return Answer(Verdict.ALREADY_ENROLLED)
        return Answer(Verdict.ENROLLED)

    def reset(self, slack_user_id: str, by: str) -> bool:
        """Remove a person's enrolment (audited); False when they had none."""
        return self.enrolments.reset(slack_user_id, self.now(), by)

    # -- approving ---------------------------------------------------------------------------

    def ready(self, actor: str) -> Answer | None:
        """Why `actor` cannot be asked for a code now (not enrolled, locked out), or None."""
        enrolment = self.enrolments.get(actor)
        if enrolment is None:
            return Answer(Verdict.NOT_ENROLLED)
        if enrolment.locked_until is not None and enrolment.locked_until > self.now():
            return Answer(Verdict.LOCKED, enrolment.locked_until)
        return None

    def check(self, actor: str, code: str) -> Answer:
        """Whether `code` lets `actor` approve now; a VERIFIED code is spent (never good again)."""
        not_ready = self.ready(actor)
        if not_ready is not None:
            return not_ready
        if totp.normalise(code) is None:
            return Answer(Verdict.NOT_SIX_DIGITS)
        enrolment = self.enrolments.get(actor)
        if enrolment is None:
            return Answer(Verdict.NOT_ENROLLED)  # reset in the meantime
        try:
            secret = self.sealer.open(enrolment.secret_sealed)
        except Unsealable:
            return Answer(Verdict.KEY_CHANGED)
        now = self.now()
        step = totp.matching_step(secret, code, now)
        if step is None:
            until = self.codes.wrong_code(actor, now, limit=LOCK_AFTER, window=LOCK_WINDOW, lock_for=LOCK_FOR)
            return Answer(Verdict.LOCKED, until) if until else Answer(Verdict.WRONG_CODE)
        if not self.codes.spend(actor, step, now):
            return Answer(Verdict.REPLAYED)
        return Answer(Verdict.VERIFIED)
