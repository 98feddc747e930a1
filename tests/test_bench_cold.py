"""The pure helpers of bench/cold.py: which PostgreSQL backends count as serving stores."""

from bench.cold import pct, served_backends


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
