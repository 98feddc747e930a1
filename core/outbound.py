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

`KeptAliveClient` is the other outbound path: the payment gateway's transport (our own
setting, not a configured URL), kept-alive connections per thread.
"""

from __future__ import annotations

import http.client
import ipaddress
import select
import socket
import ssl
import threading
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


# --- kept-alive connections to one API (the payment gateway) --------------------------------
# Not for configured URLs: the gateway's address is our own setting, so no address check here.


class TransportError(Exception):
    """A request that got no whole answer. `name` is what requests calls the same fault (the
    name the Stripe SDK's errors have always carried); `retryable` is requests' verdict too:
    nothing sent, a timeout, or the connection lost before the answer began may be retried
    with the same idempotency key; a TLS failure or an answer cut off mid-body may not."""

    def __init__(self, name: str, detail: str, *, retryable: bool):
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.retryable = retryable


class Headers(Mapping[str, str]):
    """An answer's headers, looked up whatever the case (as requests' CaseInsensitiveDict)."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self._items: dict[str, tuple[str, str]] = {}
        for key, value in pairs:
            seen = self._items.get(key.lower())
            self._items[key.lower()] = (key, f"{seen[1]}, {value}" if seen else value)

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __iter__(self):
        return (key for key, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)


def proxy_for(url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, NO_PROXY…) names for `url`, as requests reads it."""
    import urllib.request

    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def _readable(sock: socket.socket) -> bool:
    """Data or EOF waiting on an idle kept-alive socket: the server closed it (or broke HTTP)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _fault(exc: BaseException, phase: str) -> TransportError | None:
    """Which of requests' faults `exc` is, in the phase it happened; None: not a transport
    fault (a bad URL or header), raised as it is. Where the name may differ (a TLS handshake
    that hangs: requests says ReadTimeout, we say ConnectTimeout; a send that fails: urllib3
    first tries to read an answer) the retry verdict is the same."""
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return TransportError("SSLError", repr(exc), retryable=False)
    if isinstance(exc, TimeoutError):
        name = {"connect": "ConnectTimeout", "answer": "ReadTimeout"}.get(phase, "ConnectionError")
        return TransportError(name, f"timed out ({phase}): {exc!r}", retryable=True)
    if isinstance(exc, OSError | http.client.HTTPException):
        if phase == "body":  # requests: ChunkedEncodingError, not retried
            return TransportError("ChunkedEncodingError", repr(exc), retryable=False)
        return TransportError("ConnectionError", f"{phase}: {exc!r}", retryable=True)
    return None


class KeptAliveClient:
    """HTTP(S) requests to an API we call on every checkout: one keep-alive connection per
    thread and host (gunicorn's threads never share one), TLS verified against `ca_file` (the
    system's store when None), `timeout` for the connect and for each read, never a redirect
    followed and never a request sent twice. Faults raise TransportError (see `_fault`).

    Compared with requests (what the Stripe SDK uses by default) it skips the per-call
    Session work: environment and proxy lookups, cookies, hooks, adapters, retry objects
    (bench/README.md, "The gateway's HTTP transport")."""

    def __init__(self, *, timeout: float, ca_file: str | None = None):
        self.timeout = timeout
        self._context = ssl.create_default_context(cafile=ca_file)
        self._local = threading.local()

    def _connection(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        connections = self._local.__dict__.setdefault("connections", {})
        conn = connections.get((scheme, host, port))
        if conn is not None and conn.sock is not None and _readable(conn.sock):
            conn.close()  # closed by the server while idle: open a new one before sending
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(
                    host, port, timeout=self.timeout, context=self._context
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            connections[(scheme, host, port)] = conn
        return conn

    def request(
        self, method: str, url: str, headers: Mapping[str, str], body: str | bytes | None = None
    ) -> tuple[bytes, int, Headers]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"
        conn = self._connection(parts.scheme, parts.hostname, port)
        phase = "connect"
        try:
            if conn.sock is None:
                conn.connect()
            phase = "send"
            conn.request(
                method.upper(),
                path,
                body=body.encode() if isinstance(body, str) else body,
                headers=headers,
            )
            phase = "answer"
            response = conn.getresponse()
            phase = "body"
            data = response.read()
        except BaseException as exc:
            conn.close()  # whatever state it is in, the next request starts afresh
            fault = _fault(exc, phase)
            if fault is None:
                raise
            raise fault from exc
        if response.will_close:
            conn.close()
        return data, response.status, Headers(response.getheaders())

    def close(self) -> None:
        """Close this thread's connections."""
        for conn in self._local.__dict__.pop("connections", {}).values():
            conn.close()
