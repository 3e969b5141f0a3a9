"""Which addresses and URLs the bot may call back (bot/webhooks/destinations.py), as pure rules:
every special-purpose range refused, a global address allowed, an address embedded in 6to4 or
NAT64 judged as itself, and the answers a resolver may give (none, not an address, a failure)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from bot.webhooks.destinations import (
    AllowedHost,
    Destination,
    Refused,
    Unresolved,
    address_problem,
    checked_addresses,
    destination,
)
from tests.callback_support import PUBLIC, StubResolver


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("10.1.2.3", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.0.1", "a private address"),
        ("192.0.2.1", "a private address"),  # documentation (TEST-NET-1): not global
        ("100.127.255.254", "a shared (carrier-grade NAT) address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.0.1", "a link-local address"),
        ("fe80::abcd", "a link-local address"),
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("ff0e::1", "a multicast address"),
        ("255.255.255.255", "the broadcast address"),
        ("240.1.2.3", "a reserved address"),
        ("::10.0.0.1", "a reserved address"),  # IPv4-compatible
        ("fc00::1", "a unique-local address"),
        ("fdff::1", "a unique-local address"),
        ("::ffff:93.184.215.14", "an IPv4-mapped IPv6 address"),
        ("2002:0a00:0001::1", "a 6to4 address embedding 10.0.0.1, a private address"),
        ("64:ff9b::7f00:1", "a NAT64 address embedding 127.0.0.1, a loopback address"),
        ("2001:db8::1", "a private address"),  # documentation
        (PUBLIC, None),
        ("2606:4700::1111", None),
        ("2002:5db8:d70e::1", None),  # 6to4 of a public address
        ("64:ff9b::5db8:d70e", None),  # NAT64 of a public address
    ],
)
def test_address_problem(address, problem):
    assert address_problem(ipaddress.ip_address(address)) == problem


def test_a_listed_host_matches_its_port_or_the_scheme_s_own():
    hosts = frozenset({AllowedHost("partner.example"), AllowedHost("127.0.0.1", 8443)})
    assert isinstance(destination("https://partner.example/x", hosts, 2000), Destination)
    assert isinstance(destination("https://partner.example:443/x", hosts, 2000), Destination)
    assert isinstance(destination("https://PARTNER.example./x", hosts, 2000), Destination)
    assert destination("https://partner.example:444/x", hosts, 2000) == Refused(
        "partner.example:444 is not in SFOX_INTAKE_CALLBACK_HOSTS"
    )
    assert isinstance(destination("http://127.0.0.1:8443/x", hosts, 2000), Destination)
    assert isinstance(destination("https://x.example/" + "a" * 1990, frozenset(), 2000), Refused)


def test_what_a_resolver_answers_is_checked_whole():
    public = destination("https://partner.example/x", frozenset(), 2000)
    assert isinstance(public, Destination)

    def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    assert checked_addresses(public, failing) == Unresolved("partner.example did not resolve (gaierror)")
    assert checked_addresses(public, StubResolver([])) == Unresolved("partner.example resolved to no address")
    assert isinstance(checked_addresses(public, StubResolver(["not-an-ip"])), Refused)
    assert checked_addresses(public, StubResolver([PUBLIC, PUBLIC, "2606:4700::1111"])) == [
        PUBLIC,
        "2606:4700::1111",
    ]
    refused = checked_addresses(public, StubResolver(["2606:4700::1111", "fd00::7"]))
    assert isinstance(refused, Refused) and "fd00::7, a unique-local address" in refused.problem
    listed = destination("http://localhost:8080/x", frozenset({AllowedHost("localhost", 8080)}), 2000)
    assert isinstance(listed, Destination)
    assert checked_addresses(listed, StubResolver(["127.0.0.1", "::1"])) == ["127.0.0.1", "::1"]
    plain = checked_addresses(listed, StubResolver(["127.0.0.1", "10.0.0.1"]))
    assert isinstance(plain, Refused) and "not loopback (plain http)" in plain.problem
    private = destination("https://db.internal/x", frozenset({AllowedHost("db.internal")}), 2000)
    assert isinstance(private, Destination)
    assert checked_addresses(private, StubResolver(["10.0.0.1"])) == ["10.0.0.1"]  # the operator's say


@pytest.mark.parametrize(
    "host", ["127.1", "0x7f000001", "0177.0.0.1", "2130706433", "10.0.0.999", "1.2.3.4.5"]
)
def test_a_host_read_as_a_number_is_refused_in_any_form(host):
    refused = destination(f"https://{host}/x", frozenset(), 2000)
    assert refused == Refused(f"{host} is not a dotted-quad IPv4 address (write the address as a.b.c.d)")
