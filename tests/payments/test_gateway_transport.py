"""The gateway's HTTP transport (payments.stripe_gateway.KeptAliveHTTPClient over
core.outbound.KeptAliveClient) against real sockets: each fault raises what the SDK's own
stripe.RequestsClient raises for it (the same exception, `should_retry` and message), since
exactly-once money reads them (an APIConnectionError is an unknown outcome, retried with the
same key); connections are kept alive per thread and survive a server closing an idle one."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest
import stripe
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.outbound import proxy_for
from devtools.services import free_port
from payments.stripe_gateway import KeptAliveHTTPClient, StripeGateway

TIMEOUT = 0.5
BODY = b'{"id": "cus_1", "object": "customer", "email": "a@example.com"}'
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nRequest-Id: req_1\r\n"
CLIENTS = {
    "requests": lambda: stripe.RequestsClient(timeout=TIMEOUT),
    "kept-alive": lambda: KeptAliveHTTPClient(timeout=TIMEOUT),
}


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)
    return head


class Server:
    """A loopback TCP server running `handle(conn)` for each connection on a thread."""

    def __init__(self, handle: Callable[[socket.socket], None], tls: ssl.SSLContext | None):
        self.handle, self.tls = handle, tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.threads: list[threading.Thread] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            # Listed before it starts: a test that joins `threads` after the answer must find
            # the thread that sent it (appended after start, the answer could come first, and
            # the join miss the close it waits for).
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handle(conn)
        except OSError:
            pass  # the client gave up (a refused certificate, its timeout)
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(5)


def hang(conn: socket.socket) -> None:
    _read_request(conn)
    conn.recv(1)  # until the client gives up and closes


def close_before_answering(conn: socket.socket) -> None:
    _read_request(conn)


def close_mid_body(conn: socket.socket) -> None:
    _read_request(conn)
    conn.sendall(ANSWER + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY[:10])


def hang_mid_body(conn: socket.socket) -> None:
    _read_request(conn)
    conn.sendall(ANSWER + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY[:10])
    conn.recv(1)


def not_http(conn: socket.socket) -> None:
    _read_request(conn)
    conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")


def answer_keep_alive(conn: socket.socket) -> None:
    while _read_request(conn):
        conn.sendall(ANSWER + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY)


def answer_then_close(conn: socket.socket) -> None:
    """Answers as if keeping the connection, then closes it once idle (a server's idle
    timeout): the client learns it only from the socket."""
    _read_request(conn)
    conn.sendall(ANSWER + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY)


def _self_signed() -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    import tempfile

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as pem:
        pem.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        pem.write(cert.public_bytes(serialization.Encoding.PEM))
        pem.flush()
        context.load_cert_chain(pem.name)
    return context


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(handle, *, tls: bool = False) -> Server:
        servers.append(Server(handle, _self_signed() if tls else None))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _sdk(http_client, url: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_x", base_addresses={"api": url}, max_network_retries=0, http_client=http_client
    )


def _fault(client_name: str, url: str) -> stripe.APIConnectionError:
    with pytest.raises(stripe.APIConnectionError) as caught:
        _sdk(CLIENTS[client_name](), url).v1.customers.create(
            params={"email": "a@example.com"}, options={"idempotency_key": "k-1"}
        )
    return caught.value


# fault → (requests' exception name in the message, should_retry), as RequestsClient has it
FAULTS = {
    "refused": ("ConnectionError", True),
    "hangs past the timeout": ("ReadTimeout", True),
    "closes before answering": ("ConnectionError", True),
    "answers something not HTTP": ("ConnectionError", True),
    "hangs mid-body": ("ConnectionError", True),
    "closes mid-body": ("ChunkedEncodingError", False),
    "has an untrusted certificate": ("SSLError", False),
}


def _url_for(fault: str, serve) -> str:
    if fault == "refused":
        return f"http://127.0.0.1:{free_port()}"
    handle = {
        "hangs past the timeout": hang,
        "closes before answering": close_before_answering,
        "answers something not HTTP": not_http,
        "hangs mid-body": hang_mid_body,
        "closes mid-body": close_mid_body,
        "has an untrusted certificate": answer_keep_alive,
    }[fault]
    return serve(handle, tls=fault == "has an untrusted certificate").url


@pytest.mark.parametrize("client_name", list(CLIENTS))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_server_that_fails_raises_the_sdks_connection_error_with_requests_retry_verdict(
    client_name, fault, serve
):
    name, should_retry = FAULTS[fault]

    error = _fault(client_name, _url_for(fault, serve))

    assert error.should_retry is should_retry
    assert f"(Network error: {name}: " in error.user_message


@pytest.mark.parametrize("fault", list(FAULTS))
def test_both_transports_give_the_same_message_up_to_the_network_detail(fault, serve):
    url = _url_for(fault, serve)
    errors = [_fault(client_name, url) for client_name in CLIENTS]

    heads = [e.user_message.split("(Network error:")[0] for e in errors]
    assert heads[0] == heads[1] and heads[0].strip()
    assert errors[0].should_retry is errors[1].should_retry


def test_the_connection_is_kept_alive_per_thread(serve):
    server = serve(answer_keep_alive)
    sdk = _sdk(KeptAliveHTTPClient(timeout=TIMEOUT), server.url)

    for _ in range(3):
        assert sdk.v1.customers.create(params={"email": "a@example.com"}).id == "cus_1"
    assert server.connections == 1
    other = threading.Thread(target=lambda: sdk.v1.customers.create(params={"email": "b@x.y"}))
    other.start()
    other.join(5)
    sdk.v1.customers.create(params={"email": "a@example.com"})
    assert server.connections == 2  # the other thread's own; this thread's is still in use


def test_a_connection_the_server_closed_while_idle_is_replaced_before_sending(serve):
    server = serve(answer_then_close)
    sdk = _sdk(KeptAliveHTTPClient(timeout=TIMEOUT), server.url)

    for _ in range(3):
        assert sdk.v1.customers.create(params={"email": "a@example.com"}).id == "cus_1"
        for thread in server.threads:
            thread.join(5)  # closed by the server before the next call
    assert server.connections == 3


def test_answer_headers_are_read_whatever_their_case(serve):
    server = serve(answer_keep_alive)
    client = KeptAliveHTTPClient(timeout=TIMEOUT)

    body, status, headers = client.request("get", f"{server.url}/v1/customers/cus_1", {})

    assert (body, status) == (BODY, 200)
    assert headers["request-id"] == headers["Request-Id"] == "req_1"
    assert "REQUEST-ID" in headers and "stripe-should-retry" not in headers


def test_a_proxy_named_by_the_environment_keeps_requests(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost")
    assert proxy_for("https://api.stripe.com") == "http://proxy.internal:3128"
    assert proxy_for("http://localhost:8420") is None
    proxied = StripeGateway(secret_key="sk_test_x", api_base=None)
    assert isinstance(proxied._http_client, stripe.RequestsClient)

    monkeypatch.delenv("HTTPS_PROXY")
    direct = StripeGateway(secret_key="sk_test_x", api_base=None)
    assert isinstance(direct._http_client, KeptAliveHTTPClient)
