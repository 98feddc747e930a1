"""Real worker processes and a gateway proxy that can hold a request, for the kill tests."""

from __future__ import annotations

import socket
import subprocess
import threading
from urllib.parse import urlsplit

from config.celery_app import app
from tests.conftest import test_database_url
from tests.worker_support import wait_for as worker_wait_for
from tests.worker_support import worker_start, worker_stop


class HoldingProxy:
    """A TCP proxy to the local Stripe server. `hold_next(marker)` makes the next request
    containing `marker` hang (the worker blocks inside its gateway call) until `release()`,
    after which that connection is cut, as a dying worker's would be."""

    def __init__(self, target: str):
        parts = urlsplit(target)
        self.target = (parts.hostname, parts.port)
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(50)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self._marker: bytes | None = None
        self.held = threading.Event()
        self._release = threading.Event()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def hold_next(self, marker: bytes) -> None:
        self._release = threading.Event()
        self.held.clear()
        self._marker = marker

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._closed = True
        self._release.set()
        self.server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _serve(self, client) -> None:
        upstream = socket.create_connection(self.target)
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        try:
            while data := client.recv(65536):
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    self.held.set()
                    self._release.wait(60)
                    return
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()


def start_worker(
    *,
    log_path,
    redis_url: str,
    stripe_api_base: str,
    pool: str = "solo",
    smtp_port: int = 25,
    visibility_timeout: int = 3600,
    purge: bool = True,
) -> subprocess.Popen:
    return worker_start(
        env={
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": app.conf.broker_url,
            "STRIPE_API_BASE": stripe_api_base,
            "WORKER_SMTP_PORT": str(smtp_port),
            "WORKER_VISIBILITY_TIMEOUT": str(visibility_timeout),
            "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        },
        log_path=log_path,
        name="workers",
        pool=pool,
        concurrency=1,
        purge=purge,
    )


stop = worker_stop
wait_for = worker_wait_for
