"""The Celery broker transport: kombu's Redis transport with one guard (issue 20, item 9).

kombu 5.7 / celery 5.7, Redis broker: when the broker connection drops, the worker's consumer
first `collect()`s the connection (closing its channels while Redis is down fails, which is
ignored, and the transport's `client` is set to None), then `close()`s it again. The second
close of the default channel drops its pool and then tries to requeue the channel's
unacknowledged messages; building a new pool reads `transport.client.hostname`, `client` is
None, and the AttributeError is not one of the connection errors `ignore_errors` swallows, so
the worker stops with "Unrecoverable error: AttributeError("'NoneType' object has no attribute
'hostname'")". See docs/kombu-restore-repro.md.

The guard turns that case into what it is, a connection error: the close is then ignored like
any other close of a dead connection and the consumer reconnects. Nothing is lost: the
unacknowledged messages are still in Redis's `unacked` hash, and a worker requeues them once
they are older than the visibility timeout (kombu's `restore_visible`), exactly as after a
worker crash. With Redis down the requeue could not have happened anyway.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis
from redis import exceptions as redis_exceptions


class Channel(kombu_redis.Channel):
    _sync_client = None

    def _create_client(self, asynchronous: bool = False):
        """One client per channel and pool instead of a new one per publish (kombu builds a
        `redis.Redis` for every message it sends: ~0.2 ms of CPU each, its command table
        copied, on the web's request path). The client holds no connection of its own: it
        takes one from the channel's pool per command, as before. A new pool (after a
        reconnection) gets a new client."""
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()
        return client

    def _connparams(self, asynchronous: bool = False) -> dict:
        transport = self.connection
        if transport is None or transport.client is None:
            raise redis_exceptions.ConnectionError(
                "broker connection already closed: unacknowledged messages stay in Redis "
                "and are requeued after the visibility timeout"
            )
        return super()._connparams(asynchronous=asynchronous)


class RedisTransport(kombu_redis.Transport):
    Channel = Channel
