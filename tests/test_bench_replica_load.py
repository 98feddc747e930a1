"""The pure helpers of bench/replica_load.py: which server processes are counted, and how."""

import pytest

from bench.replica_load import CpuAccount, process_kind, reads_cpu

DB = "storefront_bench_replica"


def test_backends_of_the_bench_database_are_told_apart_with_or_without_a_cluster_name():
    assert process_kind(f"postgres: 15/main: postgres {DB} 127.0.0.1(4480) idle", DB) == "bench"
    assert process_kind(f"postgres: postgres {DB} 127.0.0.1(4480) SELECT", DB) == "bench"
    assert process_kind("postgres: 15/main: postgres sf_other 127.0.0.1(1) idle", DB) == "other"
    assert process_kind("postgres: 15/main: checkpointer ", DB) == "other"
    assert process_kind("/usr/lib/postgresql/15/bin/postgres -D /data", DB) == "other"


def test_replication_processes_have_their_own_kind():
    assert process_kind("postgres: 15/main: walsender postgres 127.0.0.1(9) streaming", DB) == (
        "walsender"
    )
    assert process_kind("postgres: startup recovering 000000010000000000000003", DB) == "startup"
    assert process_kind("postgres: walreceiver streaming 0/3000148", DB) == "walreceiver"


def test_cpu_counts_from_the_window_start_for_old_processes_and_from_zero_for_new_ones():
    account = CpuAccount(started_at=100.0)
    account.add(1, "bench", 5.0, born=50.0)  # alive before: its 5 s are not the window's
    account.add(2, "bench", 0.5, born=101.0)  # born in the window: all of it counts
    account.add(3, "walsender", 1.0, born=10.0)
    account.add(1, "bench", 7.5, born=50.0)
    account.add(2, "bench", 1.5, born=101.0)
    account.add(3, "walsender", 1.25, born=10.0)
    assert account.by_kind() == {"bench": 2.5 + 1.5, "walsender": 0.25}


def _phase(kind: str, cpu_per_s: float, paid_per_s: float, dashboards_per_s: float = 0) -> dict:
    return {
        "kind": kind,
        "primary_cpu_per_s": cpu_per_s,
        "paid_per_s": paid_per_s,
        "reads": {"rps": dashboards_per_s},
    }


def test_the_share_moved_is_the_dashboards_primary_cpu_saved_net_of_the_checkouts():
    phases = [
        _phase("A", 0.50, 10.0, 8.0),
        _phase("B", 0.38, 10.0, 8.0),
        _phase("C", 0.36, 12.0),  # 30 ms of the primary's CPU per paid checkout
        _phase("B", 0.42, 10.0, 8.0),
        _phase("A", 0.70, 10.0, 8.0),
    ]
    cost = reads_cpu(phases)
    # A 0.60, B 0.40 CPU s per s, of which 10 checkouts/s × 30 ms are the checkouts': the
    # dashboards cost 0.30 in A and 0.10 in B.
    assert cost["moved"] == pytest.approx(2 / 3)
    assert cost["A_ms"] == pytest.approx(37.5)  # 0.30 CPU s/s over 8 dashboards/s
    assert cost["B_ms"] == pytest.approx(12.5)


def test_without_a_checkout_only_phase_nothing_is_claimed():
    assert reads_cpu([_phase("A", 0.5, 10, 8.0), _phase("B", 0.4, 10, 8.0)]) == {
        "moved": None,
        "A_ms": None,
        "B_ms": None,
    }
