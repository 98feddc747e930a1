"""Where a load bench's CPU goes, by process: the web server's, PostgreSQL's backends serving the
bench's database, the gateway stub's, the generator's own, and the whole machine's.

    before = CpuSplit.of_run(run)           # a bench.harness.Run with gunicorn and the stub
    … the load …
    spent = CpuSplit.of_run(run) - before   # seconds per part

PostgreSQL's share counts the backends connected to `db` at the second reading
(`pg_stat_activity`), less what each had spent at the first (nothing, for one that connected in
between); one that ended in between is not counted, and `backends_lost` says how many did.
The machine's share is every core's busy time from /proc/stat (so it includes what no part names:
Redis, the kernel, other jobs), which is what tells a saturated machine from an idle one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import psutil
import psycopg

from bench.harness import tree_cpu_seconds

PARTS = ("gunicorn", "postgres", "stub", "generator")


def _cpu(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return t.user + t.system


def _tree(pid: int | None) -> float:
    try:
        return 0.0 if pid is None else tree_cpu_seconds(pid)
    except psutil.NoSuchProcess:
        return 0.0


def _backends(server: str, db: str) -> dict[int, float]:
    """CPU so far of each PostgreSQL backend connected to `db` (not this reading's own)."""
    with psycopg.connect(f"{server}/{db}", autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [db],
            )
        ]
    seen = {}
    for pid in pids:
        try:
            seen[pid] = _cpu(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return seen


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


@dataclass
class CpuSplit:
    parts: dict[str, float]
    machine: float
    backends: dict[int, float] = field(default_factory=dict)
    backends_lost: int = 0

    @classmethod
    def take(cls, gunicorn_pid: int, server: str, db: str, stub_pid: int | None) -> CpuSplit:
        backends = _backends(server, db)
        return cls(
            parts={
                "gunicorn": _tree(gunicorn_pid),
                "postgres": sum(backends.values()),
                "stub": _tree(stub_pid),
                "generator": _cpu(psutil.Process(os.getpid())),
            },
            machine=_machine_busy(),
            backends=backends,
        )

    @classmethod
    def of_run(cls, run) -> CpuSplit:
        """The split of a `bench.harness.Run` serving its database with gunicorn and the stub."""
        return cls.take(run.gunicorn.pid, run.server, run.db, run.stub_proc.pid)

    def __sub__(self, before: CpuSplit) -> CpuSplit:
        parts = {k: self.parts[k] - before.parts[k] for k in PARTS}
        # A backend that connected in between spent all its CPU in between.
        parts["postgres"] = sum(t - before.backends.get(p, 0.0) for p, t in self.backends.items())
        lost = len(before.backends.keys() - self.backends.keys())
        return CpuSplit(parts=parts, machine=self.machine - before.machine, backends_lost=lost)

    def per(self, count: int) -> dict[str, float]:
        """Milliseconds per item (e.g. per paid checkout), each part and the whole machine."""
        n = max(1, count)
        return {
            **{f"{k}_ms": 1000 * v / n for k, v in self.parts.items()},
            "machine_ms": 1000 * self.machine / n,
            "postgres_backends_lost": self.backends_lost,
        }

    def line(self, count: int, seconds: float) -> str:
        ms = self.per(count)
        cores = psutil.cpu_count() or 1
        busy = self.machine / max(seconds, 1e-9) / cores
        lost = (
            f", {self.backends_lost} backends ended before the count" if self.backends_lost else ""
        )
        return (
            f"CPU per paid checkout: gunicorn {ms['gunicorn_ms']:.1f} ms, PostgreSQL "
            f"{ms['postgres_ms']:.1f} ms{lost}, stub {ms['stub_ms']:.1f} ms, generator "
            f"{ms['generator_ms']:.1f} ms; the whole machine {ms['machine_ms']:.1f} ms "
            f"({busy:.0%} of {cores} cores busy)"
        )
