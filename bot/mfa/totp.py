"""RFC 6238 time-based one-time passwords as every authenticator app reads them: SHA-1, 6 digits,
a 30-second step, and one step either side accepted for clock drift (pyotp does the arithmetic).

A code is checked to the *step* it belongs to, not to a yes or no: the step is what the replay
rule stores (a code once used by a person is refused to them afterwards), so a used code is
recognised without keeping it or the secret."""

from __future__ import annotations

import hmac
from datetime import datetime
from urllib.parse import quote

import pyotp

DIGITS = 6
STEP_SECONDS = 30
DRIFT_STEPS = 1  # pyotp's valid_window=1: the step before and the step after are accepted too
ISSUER = "sFOX Deactivate"


def new_secret() -> str:
    """A fresh random secret (160 bits, base32, as RFC 4226 recommends)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str) -> str:
    """The `otpauth://totp/…?secret=…` URI an authenticator app takes (typed or pasted)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=quote(account, safe=""), issuer_name=ISSUER
    )


def normalise(code: str) -> str | None:
    """What was typed, as a code: digits only (spaces and a dash between groups are forgiven), or
    None when it cannot be one."""
    digits = "".join(c for c in code if not c.isspace() and c != "-")
    return digits if len(digits) == DIGITS and digits.isascii() and digits.isdigit() else None


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The time step (RFC 6238's counter T) whose code `code` is, within one step of `at`; None
    when it is none of them. Compared in constant time."""
    typed = normalise(code)
    if typed is None:
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = totp.timecode(at)
    found = None
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(at, counter_offset=offset), typed) and found is None:
            found = current + offset
    return found


def code_at(secret: str, at: datetime) -> str:
    """The code an authenticator shows at `at` (for the sandbox and the tests)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).at(at)
