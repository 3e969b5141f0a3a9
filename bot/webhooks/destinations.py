"""Where the bot may send an HTTP request that a system outside asked for (the intake API's
`callback_url`, issue 32): never to this machine or the networks around it, which a caller could
otherwise reach through the bot (a cloud's metadata service, an admin port on loopback).

The rule, written once and asked twice: at intake (`url_problem`, pure: the URL's scheme,
credentials and a literal address) and at send time (`checked_addresses`: the name resolved, every
address it resolves to checked; the caller then connects to one of those very addresses, so DNS
cannot answer differently between the check and the connection).

An address is refused unless it is globally routable (`address_problem`): private (10/8,
172.16/12, 192.168/16, and the special-purpose ranges Python's `ipaddress` counts as private, the
documentation ones among them), shared (100.64/10, carrier-grade NAT), loopback, link-local,
multicast, unspecified, broadcast, reserved, unique-local (fc00::/7), IPv4-mapped or -compatible
IPv6, and 6to4 or NAT64 IPv6 that embeds a refused IPv4 address.

SFOX_INTAKE_CALLBACK_HOSTS (an `AllowedHosts`) is the operator's say: when set, only its hosts
are accepted, and for those the address rule is waived; it is the only way to a receiver on
loopback or a private network. Plain http is accepted only for a listed host on loopback."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) → the addresses it resolves to, as text; raises OSError when it cannot be resolved.
Resolver = Callable[[str, int], list[str]]
SETTING = "SFOX_INTAKE_CALLBACK_HOSTS"
DEFAULT_PORTS = {"https": 443, "http": 80}
LOOPBACK_NAMES = ("localhost",)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BROADCAST = ipaddress.ip_address("255.255.255.255")
_REFUSED_NOTE = f"the bot calls back only to public addresses, unless {SETTING} lists the host"


@dataclass(frozen=True)
class AllowedHost:
    """One entry of SFOX_INTAKE_CALLBACK_HOSTS: a host name or address, and a port (None: the
    scheme's own, 443 or 80)."""

    host: str
    port: int | None = None

    def matches(self, host: str, port: int, scheme: str) -> bool:
        return self.host == host and (self.port or DEFAULT_PORTS[scheme]) == port

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


AllowedHosts = frozenset[AllowedHost]


@dataclass(frozen=True)
class Destination:
    """A callback URL taken apart: where to connect, and whether the operator listed it."""

    scheme: str
    host: str  # lower case, no trailing dot; an IPv6 address without brackets
    port: int
    listed: bool

    @property
    def literal(self) -> IPAddress | None:
        return _literal(self.host)

    @property
    def shown(self) -> str:
        """The host (and a port not the scheme's own) for logs and answers: never a path or query."""
        return str(AllowedHost(self.host, None if self.port == DEFAULT_PORTS[self.scheme] else self.port))


@dataclass(frozen=True)
class Refused:
    """Why the bot will not call this URL: final, whatever DNS says later."""

    problem: str


@dataclass(frozen=True)
class Unresolved:
    """The name could not be resolved now (a DNS failure): worth another attempt."""

    error: str


def address_problem(address: IPAddress) -> str | None:
    """Why the bot must not connect to `address` (e.g. "a private address"), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        embedded = address.sixtofour or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None
        )
        if embedded is not None:
            inner = address_problem(embedded)
            kind = "6to4" if address.sixtofour else "NAT64"
            return f"a {kind} address embedding {embedded}, {inner}" if inner else None
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address == _BROADCAST:
        return "the broadcast address"
    if address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7"):
        return "a unique-local address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private or not address.is_global:
        return "a private address"
    return None


def destination(url: object, hosts: AllowedHosts, max_length: int) -> Destination | Refused:
    """The URL taken apart and checked as far as it can be without DNS: https (plain http only to
    a listed loopback host), no credentials or fragment, a listed host when the list is set, and
    otherwise no literal address or loopback name the bot must not call."""
    if not isinstance(url, str) or len(url) > max_length:
        return Refused(f"must be a URL of at most {max_length} characters")
    try:
        parts = urlsplit(url)
        raw_host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return Refused("not a valid URL")
    if parts.scheme not in DEFAULT_PORTS or not raw_host:
        return Refused(f"must be an absolute https URL ({_http_note()})")
    if parts.username is not None or parts.password is not None:
        return Refused("must not carry credentials (user:password@)")
    if parts.fragment:
        return Refused("must not have a #fragment")
    if not raw_host.isascii():
        return Refused("the host must be ASCII (an international name in its xn-- form)")
    host = raw_host.rstrip(".")
    literal = _literal(host)
    host = str(literal) if literal is not None else host
    port = port or DEFAULT_PORTS[parts.scheme]
    target = Destination(
        parts.scheme, host, port, listed=any(h.matches(host, port, parts.scheme) for h in hosts)
    )
    if hosts and not target.listed:
        return Refused(f"{target.shown} is not in {SETTING}")
    if literal is None and _looks_numeric(host):
        return Refused(f"{host} is not a dotted-quad IPv4 address (write the address as a.b.c.d)")
    loopback = _loopback_name(host) or (literal is not None and literal.is_loopback)
    if parts.scheme == "http" and not (target.listed and loopback):
        return Refused(f"must be https ({_http_note()})")
    if target.listed:
        return target
    if _loopback_name(host):
        return Refused(f"{host} is a loopback name ({_REFUSED_NOTE})")
    problem = address_problem(literal) if literal is not None else None
    if problem:
        return Refused(f"{host} is {problem} ({_REFUSED_NOTE})")
    return target


def checked_addresses(target: Destination, resolve: Resolver) -> list[str] | Refused | Unresolved:
    """The addresses to connect to, in the resolver's order, once every one of them passed: one
    refused address refuses the name (DNS may hand out any of them). A listed host's addresses
    are the operator's to vouch for, except that plain http goes to loopback only."""
    try:
        answers = list(dict.fromkeys(resolve(target.host, target.port)))
    except (OSError, UnicodeError) as exc:
        return Unresolved(f"{target.shown} did not resolve ({type(exc).__name__})")
    if not answers:
        return Unresolved(f"{target.shown} resolved to no address")
    for answer in answers:
        address = _literal(answer)
        if address is None:
            return Refused(f"{target.shown} resolved to {answer!r}, not an address")
        if target.scheme == "http" and not address.is_loopback:
            return Refused(f"{target.shown} resolves to {address}, not loopback (plain http)")
        problem = None if target.listed else address_problem(address)
        if problem:
            return Refused(f"{target.shown} resolves to {address}, {problem} ({_REFUSED_NOTE})")
    return answers


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system's resolver (getaddrinfo), in its order."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in found]


def parse_allowed_hosts(value: str) -> AllowedHosts:
    """SFOX_INTAKE_CALLBACK_HOSTS: comma-separated `host`, `host:port`, `a.b.c.d:port` or
    `[v6]:port`; raises ValueError saying which entry is wrong and why (the setting's problem)."""
    entries: set[AllowedHost] = set()
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            parts = urlsplit(f"https://{item}")
            host, port = (parts.hostname or "").rstrip("."), parts.port
        except ValueError:
            raise ValueError(f"{item!r} is not a host or host:port (a port is 1 to 65535)") from None
        clean = parts.netloc == item and not (parts.username or parts.password or parts.path or parts.query)
        if not host or not clean or not host.isascii() or port == 0:
            raise ValueError(f"{item!r} is not a host or host:port (no scheme, path or credentials)")
        literal = _literal(host)
        if literal is None and (_looks_numeric(host) or not _is_dns_name(host)):
            raise ValueError(f"{item!r}: {host} is neither a host name nor an IP address")
        entries.add(AllowedHost(str(literal) if literal is not None else host, port))
    if not entries:
        raise ValueError("lists no host (unset it to allow any public address)")
    return frozenset(entries)


def _http_note() -> str:
    return f"plain http only to a loopback host listed in {SETTING}"


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _loopback_name(host: str) -> bool:
    return host in LOOPBACK_NAMES or host.endswith(".localhost")


def _looks_numeric(host: str) -> bool:
    """A name the resolver would read as an IPv4 address in another form (`127.1`, `0x7f.1`,
    `2130706433`): refused, so nothing reads it differently from this module."""
    try:
        socket.inet_aton(host)
    except OSError:
        return host.rsplit(".", 1)[-1].isdigit()  # a name's last label is never all digits
    return True


def _is_dns_name(host: str) -> bool:
    labels = host.split(".")
    return len(host) <= 253 and all(
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isalnum() or c in "-_" for c in label)
        for label in labels
    )
