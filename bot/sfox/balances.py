"""The balance check: read a target's balances before anyone is asked to approve.

sFOX has no enterprise balance endpoint, so the bot reads them as the user: a user token from
`POST /v1/enterprise/user-tokens/{id}` (enterprise key), then `GET /v1/user/balance` with that
token. The token serves that one read and is dropped: it is never stored, logged or shown, and
every error text here is built without it.

sFOX refuses to deactivate an account whose `balance` is not 0 in every currency (held funds
count). Only a *known* non-zero balance blocks a request; a read that fails is reported as "not
checked" and the card is posted anyway (fail open): sFOX itself still refuses the DELETE (422)
while funds remain, so no money is at risk.

The balance route allows about 5 calls per 10 s, so reads are paced by a limiter of their own
(a `RateLimit` of bot/sfox/pacing.py, shared by every replica, on top of the client's general one,
which each of the two calls also takes): one slot of the route per read, from before the token is
asked for until the balance answer came back. A read that cannot get a slot soon counts as not
checked: the card is not held back for long. A 429 of the route closes it for its Retry-After.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from bot.sfox.client import SfoxClient
from bot.sfox.errors import SfoxError, clip
from bot.sfox.pacing import (
    BALANCE_ROUTE,
    BOUND_SECONDS,
    LocalRateLimiter,
    RateLimit,
    SharedRateLimiter,
)

if TYPE_CHECKING:
    from bot.store.db import Store

log = logging.getLogger("sfox_bot.balances")

MODES = ("required", "advisory", "off")
# sFOX allows about 5 balance reads per 10 s; 4 leaves headroom for anything else using the route.
ROUTE_LIMIT = 4
ROUTE_WINDOW_SECONDS = 10.0
# How long a read may wait for a slot of the route's limiter before it counts as not checked.
SLOT_WAIT_SECONDS = 3.0
# The watches' reads (bot/requests/watching.py) take at most the route's limit less one of its
# slots in a window, so a person's request is never starved by them; they may wait long for one.
WATCH_LIMIT = ROUTE_LIMIT - 1
WATCH_SLOT_WAIT_SECONDS = 60.0
MAX_CURRENCIES = 1000
# A route slot covers two calls, the token's and the read's, each within the client's timeout.
CALLS_PER_READ = 2
_CURRENCY = re.compile(r"^[A-Za-z0-9._-]{1,20}\Z")


@dataclass(frozen=True)
class Balance:
    currency: str
    balance: Decimal
    held: Decimal

    @property
    def nonzero(self) -> bool:
        return self.balance != 0 or self.held != 0

    def describe(self) -> str:
        text = f"{self.currency.upper()} {_number(self.balance)}"
        return f"{text} ({_number(self.held)} held)" if self.held else text


@dataclass(frozen=True)
class BalanceCheck:
    """What one check found: the balances (None when they could not be read, with `problem`
    saying why), when they were read, and the mode the check ran in."""

    mode: str
    checked_at: datetime
    balances: tuple[Balance, ...] | None = None
    problem: str | None = None

    @property
    def funds(self) -> tuple[Balance, ...]:
        return tuple(b for b in self.balances or () if b.nonzero)

    @property
    def blocks(self) -> bool:
        """Only a known non-zero balance in `required` mode stops a request before its card."""
        return self.mode == "required" and bool(self.funds)

    def to_json(self) -> str:
        """What the request row keeps (never the token): the balances read, or why not."""
        data: dict[str, Any] = {"mode": self.mode, "checked_at": self.checked_at.isoformat()}
        if self.balances is None:
            data["not_checked"] = self.problem
        else:
            data["balances"] = [
                {"currency": b.currency, "balance": _number(b.balance), "held": _number(b.held)}
                for b in self.balances
            ]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> BalanceCheck | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            rows = data.get("balances")
            return cls(
                mode=str(data.get("mode", "required")),
                checked_at=datetime.fromisoformat(data["checked_at"]),
                balances=None
                if rows is None
                else tuple(Balance(r["currency"], Decimal(r["balance"]), Decimal(r["held"])) for r in rows),
                problem=data.get("not_checked"),
            )
        except (ValueError, KeyError, TypeError, AttributeError, InvalidOperation):
            return None


def describe_funds(balances: tuple[Balance, ...]) -> str:
    """`USD 100 (10 held), BTC 0.5`: the currencies that hold something."""
    return ", ".join(b.describe() for b in balances if b.nonzero) or "none"


def card_line(stored: str | None) -> str | None:
    """The card's balance line for what the request row keeps; None when nothing was read."""
    check = BalanceCheck.from_json(stored)
    if check is None:
        return None
    if check.balances is None:
        return f"Balances: not checked ({check.problem or 'no reason recorded'})"
    when = check.checked_at.astimezone(UTC).strftime("%H:%M UTC")
    if not check.funds:
        return f"Balances: all zero (checked {when})"
    return (
        f"Balances: {describe_funds(check.funds)} (checked {when}); "
        "sFOX refuses to deactivate an account with funds"
    )


def history_balances(stored: str | None) -> list[dict[str, Any]] | None:
    """For `history`: the list read (currency and balance only), or None when not read."""
    check = BalanceCheck.from_json(stored)
    if check is None or check.balances is None:
        return None
    return [{"currency": b.currency, "balance": _json_number(b.balance)} for b in check.balances]


def parse_balances(data: Any) -> tuple[Balance, ...]:
    """The bare array `GET /v1/user/balance` answers; ValueError when it is not one."""
    if not isinstance(data, list) or len(data) > MAX_CURRENCIES:
        raise ValueError("not a list of currencies")
    out: list[Balance] = []
    for item in data:
        if not isinstance(item, dict):
            raise ValueError("an entry is not an object")
        currency = item.get("currency")
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            raise ValueError("an entry has no readable currency")
        balance = _amount(item.get("balance"))
        if balance is None:
            raise ValueError(f"{currency} has no readable balance")
        held = _amount(item.get("held", 0))
        out.append(Balance(currency, balance, held if held is not None else Decimal(0)))
    return tuple(out)


class BalanceReader:
    """Reads balances for the workflow, in `required` or `advisory` mode, paced per route."""

    def __init__(
        self,
        sfox: SfoxClient,
        mode: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        limiter: RateLimit | None = None,
        slot_wait_seconds: float = SLOT_WAIT_SECONDS,
    ) -> None:
        assert mode in ("required", "advisory")
        self.sfox = sfox
        self.mode = mode
        self.now = clock
        self.limiter = limiter or LocalRateLimiter(
            ROUTE_LIMIT, ROUTE_WINDOW_SECONDS, bound=CALLS_PER_READ * sfox.timeout_seconds
        )
        self.slot_wait_seconds = slot_wait_seconds

    def check(self, sfox_user_id: str) -> BalanceCheck:
        """Never raises for an sFOX problem: a failed read is a check that says why."""
        checked_at = self.now()
        try:
            balances = self._read(sfox_user_id)
        except _NotChecked as exc:
            log.info("balances not checked", extra={"sfox_user_id": sfox_user_id, "reason": str(exc)})
            return BalanceCheck(self.mode, checked_at, None, clip(str(exc), 200))
        return BalanceCheck(self.mode, checked_at, balances)

    def _read(self, sfox_user_id: str) -> tuple[Balance, ...]:
        # Wait for the route's slot before minting a token that could not be used anyway.
        slot = self.limiter.acquire(timeout=self.slot_wait_seconds)
        if slot is None:
            raise _NotChecked(
                f"the balance route's rate limit (about 5 reads per 10 s) had no free slot "
                f"within {self.slot_wait_seconds:g} s"
            )
        slot.sent = True  # the route's call may go out from here on
        try:
            return self._read_with_token(sfox_user_id)
        finally:
            slot.answered()

    def _read_with_token(self, sfox_user_id: str) -> tuple[Balance, ...]:
        try:
            token = self.sfox.create_user_token(sfox_user_id)
        except SfoxError as exc:
            raise _NotChecked(f"sFOX gave no user token: {_reason(exc, 'the enterprise key')}") from None
        try:
            data = self.sfox.get_user_balances(token, hold=self.limiter)
        except SfoxError as exc:
            raise _NotChecked(f"the balance read failed: {_reason(exc, 'the user token')}") from None
        finally:
            del token  # used for this one read only
        try:
            return parse_balances(data)
        except ValueError as exc:
            raise _NotChecked(f"sFOX answered with a balance list the bot cannot read ({exc})") from None


def route_limiter(
    store: Store, limit: int = ROUTE_LIMIT, timeout_seconds: float = BOUND_SECONDS
) -> RateLimit:
    """The balance route's window, kept in the database and shared by every replica, for the reads
    a person waits on (the card's, a batch's pre-flight): at most `limit` per 10 s, the watches'
    reads included. `timeout_seconds`: the client's, each of a read's two calls within it."""
    return SharedRateLimiter(
        store,
        limit,
        window=ROUTE_WINDOW_SECONDS,
        route=BALANCE_ROUTE,
        bound=CALLS_PER_READ * timeout_seconds,
    )


def watch_reader(
    sfox: SfoxClient, store: Store, limiter: RateLimit | None = None, route_limit: int = ROUTE_LIMIT
) -> BalanceReader:
    """The watches' reader (bot/requests/watching.py): funds always count, and a read may wait
    long for its slot (nobody waits on it), in the same shared window as a person's reads but
    taking at most `route_limit - 1` of its slots; or in `limiter`."""
    shared = limiter or SharedRateLimiter(
        store,
        max(1, route_limit - 1),
        window=ROUTE_WINDOW_SECONDS,
        route=BALANCE_ROUTE,
        bound=CALLS_PER_READ * sfox.timeout_seconds,
    )
    return BalanceReader(sfox, "required", limiter=shared, slot_wait_seconds=WATCH_SLOT_WAIT_SECONDS)


class _NotChecked(Exception):
    pass


def _reason(exc: SfoxError, credential: str) -> str:
    """The client's message, except for 401/403, whose stock text is about the enterprise key."""
    if exc.status == 401:
        return f"sFOX refused {credential} (401)"
    if exc.status == 403:
        return f"sFOX did not allow {credential} to do this (403)"
    return exc.message


def _amount(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _number(value: Decimal) -> str:
    """100, 0.5, 0.00012 — never 1E+2 or trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)
