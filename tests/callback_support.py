"""What the intake callback tests share (issue 32, part 4): a stub resolver that answers what a
test says and counts its questions, a transport that records every request before (optionally)
handing it on, and a certificate authority of the test's own for an HTTPS receiver on loopback.

No test connects to a private or link-local address: a "public" address a test resolves to is
only ever seen by a recording transport with nothing behind it; real connections go to
127.0.0.1 (and 127.0.0.2, which refuses: nothing listens there)."""

from __future__ import annotations

import datetime as dt
import ssl
import tempfile
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# A global address (in no special-purpose range): the bot may call it, and a test never does.
PUBLIC = "93.184.215.14"


class StubResolver:
    """Answers `answers[i]` to the i-th question (the last one from then on), and records them."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


class Recording(httpx.BaseTransport):
    """Records each request; hands it to `inner` (a real transport) or answers `status` itself,
    connecting nowhere."""

    def __init__(
        self,
        inner: httpx.BaseTransport | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.inner = inner
        self.status = status
        self.headers = headers or {}
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.inner is None:
            return httpx.Response(self.status, headers=self.headers)
        return self.inner.handle_request(request)

    @property
    def hosts(self) -> list[str]:
        return [r.url.host for r in self.seen]


class TestAuthority:
    """A CA made for one test and the server certificates it signs (ECDSA P-256, a day long)."""

    __test__ = False  # not a test class

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sfox-bot test CA")])
        now = dt.datetime.now(dt.UTC)
        self._name = name
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._dir = Path(tempfile.mkdtemp(prefix="sfox-bot-ca-"))

    def client_context(self) -> ssl.SSLContext:
        """What the bot verifies receivers with: this CA only, host names checked."""
        return ssl.create_default_context(cadata=self.cert.public_bytes(serialization.Encoding.PEM).decode())

    def server_context(self, dns_name: str) -> ssl.SSLContext:
        """A server's context with a certificate for `dns_name` only."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        pem = self._dir / f"{dns_name}.pem"
        pem.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
        return context
