"""The sFOX user id as typed in Slack: unwrap Slack's formatting, then accept only a strict shape.

sFOX user ids are chosen by the partner (`client_account_1`, UUIDs, e-mail-like strings), so the
rule is an allow-list of characters that cannot change the meaning of a URL path: no `/ ? # %`,
no whitespace or control characters, no Slack markup, and never `.` or `..` (HTTP clients collapse
dot segments). Even so, `path_segment` percent-encodes whatever passes.

Every pattern matches the whole string (`\\Z`, never `$`, which also matches before a final
newline): `<mailto:client_1\\n|client_1\\n>` once became the user `client_1\\n`, a second open request
for `client_1` (issue 32). The mailto's address is checked as any typed id is, unstripped: a
space or line break inside the link is refused, not trimmed.
"""

from __future__ import annotations

import re
from urllib.parse import quote

MAX_LENGTH = 128
_ALLOWED = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._@+-]{0,126}[A-Za-z0-9_])?\Z")
_MAILTO = re.compile(r"^<mailto:([^|<>]+)\|([^<>]+)>\Z")
_LINK = re.compile(r"^<([^|<>]+)(?:\|([^<>]*))?>\Z")


class InvalidUserId(ValueError):
    """The text is not an acceptable sFOX user id; the message says why, for the user."""


def parse_user_id(text: str) -> str:
    """Return the sFOX user id in `text` (one token), or raise InvalidUserId saying what is wrong."""
    token = text.strip()
    if not token:
        raise InvalidUserId("no sFOX user id given")
    mailto = _MAILTO.fullmatch(token)
    if mailto:
        address, label = mailto.groups()
        if address != label:
            raise InvalidUserId("the e-mail link's text and address differ")
        token = address
    elif token.startswith("<"):
        if _LINK.fullmatch(token) and token[1:3] in ("@U", "@W", "!s", "!c", "!h", "!e", "#C"):
            raise InvalidUserId("that is a Slack mention, not an sFOX user id")
        raise InvalidUserId("Slack formatting is not allowed in an sFOX user id")
    if len(token) > MAX_LENGTH:
        raise InvalidUserId(f"an sFOX user id is at most {MAX_LENGTH} characters")
    if token in (".", ".."):
        raise InvalidUserId("'.' and '..' are not user ids")
    if not _ALLOWED.fullmatch(token):
        bad = sorted({c for c in token if not (c.isascii() and (c.isalnum() or c in "._@+-"))})
        if bad:
            shown = ", ".join(repr(c) for c in bad[:5])
            raise InvalidUserId(f"an sFOX user id may not contain {shown}")
        raise InvalidUserId("an sFOX user id must start and end with a letter, digit or '_'")
    return token


def path_segment(user_id: str) -> str:
    """Percent-encode a (validated) user id as exactly one URL path segment."""
    if user_id in ("", ".", ".."):
        raise InvalidUserId("not a path segment")
    return quote(user_id, safe="")
