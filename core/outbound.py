"""Outbound HTTP to a URL someone configured (webhook subscriptions): one place that refuses
private, loopback, link-local and other non-public targets.

The host is resolved, *every* address it resolves to must be public, and the connection is
made to an address that was checked (never resolved again by the HTTP library), so a DNS answer
that changes between the check and the connect (rebinding) cannot reach an internal service.
Redirects are never followed: a 3xx is an answer like any other, recorded as a failure.

A refused target is refused before any connection, and the refusal says only that: what an
internal address would have answered (a closed port, a 404) is never learnt, so a delivery log
cannot be used to scan the network behind us.

`settings.OUTBOUND_ALLOWED_NETWORKS` (CIDRs) exempts networks from the check: the demo and the
tests list loopback for their local receiver; production lists nothing.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from core.cpu_slots import waiting

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class OutboundRefused(Exception):
    """The URL may not be requested; the message says why (and nothing the target said)."""


@dataclass(frozen=True)
class OutboundResponse:
    """What came back: a status code, or an error (a coarse kind, never the target's words)."""

    status: int | None
    error: str = ""
    refused: bool = False
    body: bytes = b""  # only when the caller asked for it (keep_body), at most 64 KiB

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [
        ipaddress.ip_network(n, strict=False)
        for n in getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", []) or []
    ]


def address_is_public(ip: IPAddress) -> bool:
    """Globally routable unicast: not private, loopback, link-local, multicast, reserved,
    unspecified, shared (CGNAT), documentation, or an IPv6 form of any of those."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return address_is_public(embedded)
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def address_allowed(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return address_is_public(ip) or any(
        ip.version == net.version and ip in net for net in _allowed_networks()
    )


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (for the Host header and TLS), without brackets
    port: int
    path: str  # path and query, as sent
    addresses: tuple[str, ...]  # every address the host resolved to, all checked


def _parse(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused("the URL is malformed") from exc
    if parts.scheme not in ("http", "https"):
        raise OutboundRefused("only http and https URLs can be called")
    if not parts.hostname:
        raise OutboundRefused("the URL has no host")
    if parts.username or parts.password:
        raise OutboundRefused("the URL may not carry a user name or password")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def _resolve(host: str, port: int) -> list[str]:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [str(literal)]
    try:
        with waiting():  # a look-up in a request (validate_public_url) holds no CPU slot
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused("the host name does not resolve") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OutboundRefused("the host name does not resolve")
    return addresses


def outbound_target(url: str) -> Target:
    """Resolve and check `url`; raises OutboundRefused unless every address is allowed."""
    scheme, host, port, path = _parse(url)
    addresses = _resolve(host, port)
    for address in addresses:
        if not address_allowed(ipaddress.ip_address(address)):
            raise OutboundRefused(
                "the address is not public (private, loopback, link-local or reserved)"
            )
    return Target(scheme, host, port, path, tuple(addresses))


def validate_public_url(url: str) -> None:
    """Save-time check (a model field validator). A host that does not resolve yet is let
    through: nothing is connected to now, and every send checks again."""
    try:
        outbound_target(url)
    except OutboundRefused as exc:
        if str(exc) == "the host name does not resolve":
            return
        raise ValidationError(f"This URL cannot be used: {exc}.", code="outbound_refused") from exc


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The certificate is checked against the host name, not the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "TLS handshake failed"
    if isinstance(exc, http.client.HTTPException):
        return "the answer was not valid HTTP"
    return "could not connect"


def outbound_post(
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    keep_body: bool = False,
) -> OutboundResponse:
    """POST `body` to `url` if its target is allowed; never follows a redirect. The answer's
    body is returned only with `keep_body` (an API we read, e.g. VIES; never a partner's)."""
    try:
        target = outbound_target(url)
    except OutboundRefused as exc:
        return OutboundResponse(None, f"refused: {exc}", refused=True)
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    error = "could not connect"
    for address in target.addresses:
        conn = connection_class(target.host, target.port, address=address, timeout=timeout)
        try:
            try:
                conn.connect()
            except OSError as exc:  # nothing was sent: the next address may answer
                error = _error_kind(exc)
                continue
            try:
                conn.request("POST", target.path, body=body, headers=dict(headers))
                response = conn.getresponse()
                status = response.status
                answer = response.read(64 * 1024)  # drain a little; recorded only if asked
            except (OSError, http.client.HTTPException, ValueError) as exc:
                return OutboundResponse(None, _error_kind(exc))  # maybe sent: never twice
        finally:
            conn.close()
        if 300 <= status < 400:
            return OutboundResponse(status, f"HTTP {status}: redirects are not followed")
        if not 200 <= status < 300:
            return OutboundResponse(status, f"HTTP {status}")
        return OutboundResponse(status, body=answer if keep_body else b"")
    return OutboundResponse(None, error)
