"""The pure helpers of bench/tenancy.py: which stores a resumed `build` still has to make."""

from bench.tenancy import bench_numbers_missing


def test_a_resumed_build_makes_only_the_numbers_not_there_yet():
    made = [f"bench-{i}" for i in range(1, 2001)]
    assert bench_numbers_missing(made, 4000) == list(range(2001, 4001))
    assert bench_numbers_missing(made, 2000) == []
    assert bench_numbers_missing(made, 1500) == []


def test_gaps_left_by_an_interrupted_chunk_are_filled_and_other_slugs_ignored():
    made = ["bench-1", "bench-3", "bench-10", "bench-x", "benchy-2", "other-4", "bench-2a"]
    assert bench_numbers_missing(made, 5) == [2, 4, 5]
    assert bench_numbers_missing([], 3) == [1, 2, 3]
