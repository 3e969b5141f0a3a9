"""TOTP secrets sealed at rest: Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under a
key derived by HKDF-SHA256 from SFOX_MFA_KEY. The database and the enrolment modal's
private_metadata only ever hold the sealed form; a database read without the key gives nothing
that makes a code.

The derivation's `info` names this use, so the same SFOX_MFA_KEY could never open anything sealed
for another purpose. A token that does not open (another key, tampered, too old) is a typed
`Unsealable`, whose text never carries the token, the key or the secret."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_KEY_LENGTH = 32
_INFO = b"sfox-deactivate-bot/mfa-secrets/v1"


class Unsealable(Exception):
    """A sealed secret that cannot be opened with this key (or is older than allowed)."""

    def __init__(self) -> None:
        super().__init__("the sealed secret cannot be opened with this SFOX_MFA_KEY (or has expired)")


class Sealer:
    """Seals and opens TOTP secrets with the key derived from SFOX_MFA_KEY."""

    def __init__(self, mfa_key: str) -> None:
        if len(mfa_key) < MIN_KEY_LENGTH:
            raise ValueError(f"SFOX_MFA_KEY must be at least {MIN_KEY_LENGTH} characters long")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(mfa_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def __repr__(self) -> str:
        return "Sealer(<key hidden>)"

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, token: str, *, max_age_seconds: int | None = None) -> str:
        """The secret sealed in `token`; `max_age_seconds` refuses a token sealed longer ago."""
        try:
            return self._fernet.decrypt(token.encode("ascii"), ttl=max_age_seconds).decode()
        except (InvalidToken, UnicodeError, ValueError):
            raise Unsealable() from None
