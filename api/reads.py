"""The partner API's list and retrieve endpoints read on the replica (core/replica.py).

`ReplicaReads` comes first in each such viewset's bases: its `list` and `retrieve` run inside
`replica_reads()`, so their querysets, counts, prefetches and serializers read on the
streaming replica when one is configured and fresh enough, and on the primary otherwise (the
same rules as the dashboard: behind by more than `DATABASE_REPLICA_MAX_LAG`, down, or in a
transaction). Nothing else does: POSTs, updates, custom actions and `Idempotency-Key`
lookups stay on the primary, and so does the key's authentication and rate limit, which DRF
runs before the handler (the key's `last_used_at` write is not in the block).

Read-your-writes: the block waits until the replica has replayed everything the primary had
written when its first read began (its WAL insert position), so a list read after a partner's
POST has returned includes that POST's rows, whichever replica or process answers; if the
replica does not get there within the bound, the primary answers. That is the guarantee the
dashboard has, and it costs one `pg_current_wal_insert_lsn()` on the primary per request.

A replica that fails under the handler (its connection lost, the standby shut down, a statement
cancelled by a recovery conflict) does not fail the request: the handler runs once more with
its reads on the primary (core/replica.py `replica_reads_call`). A failure of the primary's is
not retried. The handler builds the page's data whole before returning it; nothing of the
answer is sent before that.
"""

from __future__ import annotations

from core.replica import replica_reads_call


# No docstring: drf-spectacular would show it as the description of every endpoint of a
# viewset that has none of its own.
class ReplicaReads:
    # `list` and `retrieve` inside `replica_reads()`, run again on the primary if the replica
    # fails under them (module doc). Put it before DRF's mixins, and only on a viewset that
    # has them.

    def list(self, request, *args, **kwargs):
        return replica_reads_call(super().list, request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        return replica_reads_call(super().retrieve, request, *args, **kwargs)
