"""The fake sFOX's accounts: the sample users every test, the demo and the console know, and how a
user's private fields (its balances, funds that arrive later, a failing balance read) are kept out
of what the API shows about it."""

from __future__ import annotations

from typing import Any


def currency(code: str, balance: float, held: float = 0) -> dict[str, Any]:
    """One entry of `GET /v1/user/balance`, as sFOX shapes it."""
    return {
        "currency": code,
        "balance": balance,
        "available": balance - held,
        "held": held,
        "trading_wallet": balance,
        "collateral_wallet": 0,
        "borrow_wallet": 0,
        "lending_wallet": 0,
    }


# A user's private fields, never in what the API shows about them:
#   balances         what `GET /v1/user/balance` answers (and DELETE refuses with 422 while any is
#                    non-zero); `balance` is a shorthand for a single USD balance;
#   funds_after_read balances that arrive right after the first balance read (the card is
#                    then posted with zero balances, and the DELETE later gets 422);
#   balance_fails    the status the balance read answers with instead (e.g. 500);
#   drains_after_reads  the user withdraws everything: the balance reads after this many answer
#                    zero in every currency (a watch that ends in a card, issue 19);
#   drains_after_seconds  the same, this long after the first balance read.
PRIVATE_FIELDS = (
    "balance",
    "balances",
    "funds_after_read",
    "balance_fails",
    "drains_after_reads",
    "drains_after_seconds",
    "reads",
    "first_read",
)

SAMPLE_USERS: list[dict[str, Any]] = [
    {
        "user_id": "client_1",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "status": "VERIFIED",
        "balances": [currency("usd", 0), currency("btc", 0)],
    },
    {
        "user_id": "client_2",
        "first_name": "Grace",
        "last_name": "Hopper",
        "email": "grace@example.com",
        "status": "VERIFIED",
        "balances": [currency("usd", 1250, held=100), currency("btc", 0.5), currency("eth", 0)],
    },
    {
        "user_id": "client_3",
        "first_name": "Alan",
        "last_name": "Turing",
        "email": "alan@example.com",
        "status": "PENDING",
        "balances": [],
    },
    {
        "user_id": "client_held",
        "first_name": "Hedy",
        "last_name": "Lamarr",
        "email": "hedy@example.com",
        "status": "VERIFIED",
        "balances": [currency("usd", 40, held=40), currency("btc", 0)],
    },
    {
        "user_id": "client_late",
        "first_name": "Katherine",
        "last_name": "Johnson",
        "email": "katherine@example.com",
        "status": "VERIFIED",
        "balances": [currency("usd", 0)],
        "funds_after_read": [currency("usd", 75)],
    },
    {
        "user_id": "client_draining",
        "first_name": "Mary",
        "last_name": "Jackson",
        "email": "mary@example.com",
        "status": "VERIFIED",
        "balances": [currency("usd", 500, held=20), currency("btc", 0.1)],
        "drains_after_reads": 2,
    },
    {
        "user_id": "client_unreadable",
        "first_name": "Claude",
        "last_name": "Shannon",
        "email": "claude@example.com",
        "status": "VERIFIED",
        "balances": [currency("usd", 0)],
        "balance_fails": 500,
    },
]


def drain_if_due(user: dict[str, Any], now: float) -> None:
    """Count a balance read of a draining user, and empty its balances once it is due to."""
    user["reads"] = user.get("reads", 0) + 1
    user.setdefault("first_read", now)
    after_reads, after_seconds = user.get("drains_after_reads"), user.get("drains_after_seconds")
    if (after_reads is not None and user["reads"] > after_reads) or (
        after_seconds is not None and now - user["first_read"] >= after_seconds
    ):
        user["balances"] = [currency(b["currency"], 0) for b in user_balances(user)]
        user.pop("balance", None)


def user_balances(user: dict[str, Any]) -> list[dict[str, Any]]:
    if "balances" in user:
        return [dict(b) for b in user["balances"]]
    return [currency("usd", user.get("balance") or 0)]


def public(user: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in user.items() if k not in PRIVATE_FIELDS}
    out.setdefault("account_type", "individual")
    out.setdefault("account_role", "Client")
    out.setdefault("phone_number", None)
    out.setdefault("advisor_user_id", None)
    return out
