"""The pure helpers of bench/cold.py: which PostgreSQL backends count as serving stores, and
how a process's memory is read."""

import os
import subprocess
import sys

from bench.cold import memory, pct, served_backends


def test_both_caches_listen_connections_are_not_counted_as_serving_backends():
    pg = [
        {"pid": 1, "app": "tenant-routing-listener", "rss_mb": 20.0},
        {"pid": 2, "app": "storefront-pages-listener", "rss_mb": 21.0},
        {"pid": 3, "app": "", "rss_mb": 300.0},
        {"pid": 4, "app": None, "rss_mb": 180.0},
    ]
    assert [b["pid"] for b in served_backends(pg)] == [3, 4]


def test_percentiles_are_nearest_rank_over_the_sorted_values():
    values = [float(v) for v in range(100, 0, -1)]  # 100 … 1
    assert pct(values, 50) == 51.0
    assert pct(values, 99) == 99.0
    assert pct([5.0], 99) == 5.0


_MAPPER = (
    "import mmap, sys\n"
    "path, wait_first = sys.argv[1], sys.argv[2] == 'wait'\n"
    "if wait_first:\n"
    "    print('started', flush=True); sys.stdin.readline()\n"
    "f = open(path, 'rb'); m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
    "sum(m[i] for i in range(0, len(m), 4096)); print('mapped', flush=True)\n"
    "sys.stdin.read()"
)


def _mapper(path, *, wait_first: bool) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _MAPPER, str(path), "wait" if wait_first else "now"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )


def test_memory_reads_rss_pss_and_private_and_a_shared_page_counts_half_in_pss(tmp_path):
    """PSS divides a shared page among the processes mapping it: 8 MB of a file mapped by
    two processes count 8 MB in one's RSS but ~4 MB in its PSS.

    The process measured is a fresh interpreter of its own, not this test's: a pytest worker
    shares copy-on-write pages with the processes it forked (live servers, Celery workers of
    other tests), and its PSS jumps when one of them exits (11 MB once, in a full run)."""
    mine = memory(os.getpid())
    assert mine["rss_mb"] >= mine["pss_mb"] >= mine["private_mb"] > 0
    path = tmp_path / "shared"
    path.write_bytes(b"x" * 8 * 1024 * 1024)
    other = _mapper(path, wait_first=False)
    measured = _mapper(path, wait_first=True)
    try:
        assert other.stdout.readline() == b"mapped\n"
        assert measured.stdout.readline() == b"started\n"
        before = memory(measured.pid)
        assert before["rss_mb"] >= before["pss_mb"] >= before["private_mb"] > 0
        measured.stdin.write(b"go\n")
        measured.stdin.flush()
        assert measured.stdout.readline() == b"mapped\n"
        after = memory(measured.pid)
    finally:
        for process in (other, measured):
            process.stdin.close()
            process.wait(10)
    grew_rss = after["rss_mb"] - before["rss_mb"]
    grew_pss = after["pss_mb"] - before["pss_mb"]
    assert grew_rss >= 7.5
    assert 3.0 <= grew_pss <= 5.5
