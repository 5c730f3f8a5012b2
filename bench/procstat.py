"""CPU time and resident memory of processes, from ``/proc``; CPU pinning.

CPU time is utime + stime of ``/proc/<pid>/stat`` (the process and, once its
threads exit, theirs); a group's figure is the sum over its PIDs. A PID that
appears during a window counts from zero; one that vanished counts what it had
at the last sample.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "CpuGroups",
    "beam_pids",
    "cpu_seconds",
    "pin",
    "rss_mib",
    "tree_pids",
]

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mib(pid: int) -> float | None:
    """VmRSS of ``pid`` in MiB; None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def tree_pids(pid: int) -> list[int]:
    """``pid`` and every process descended from it (its threads are in its own
    figures already)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def _listen_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f[9])
    return inodes


def beam_pids(port: int = 5672) -> list[int]:
    """The RabbitMQ Erlang VM (``beam.smp``) listening on ``port``: the broker
    under test, not another one a neighbour may run on this machine."""
    inodes = {f"socket:[{i}]" for i in _listen_inodes(port)}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "beam.smp":
                continue
            fds = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:
            continue
        if fds & inodes:
            pids.append(int(entry.name))
    return pids


def pin(pid: int, cpus: set[int]) -> bool:
    """Pin every thread of ``pid`` to ``cpus``; False when not allowed here."""
    allowed = os.sched_getaffinity(0)
    if not cpus <= allowed:
        return False
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(tid), cpus)
    except (OSError, PermissionError):
        return False
    return True


class CpuGroups:
    """Named groups of PIDs (re-listed at each sample) and their CPU deltas."""

    def __init__(self, groups: dict[str, Callable[[], Iterable[int]]]) -> None:
        self._groups = groups
        self._start: dict[str, dict[int, float]] = {}

    def _sample(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, pids in self._groups.items():
            out[name] = {}
            for pid in pids():
                cpu = cpu_seconds(pid)
                if cpu is not None:
                    out[name][pid] = cpu
        return out

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        """CPU seconds per group since ``start``."""
        end = self._sample()
        deltas: dict[str, float] = {}
        for name, pids in end.items():
            before = self._start.get(name, {})
            total = sum(cpu - before.get(pid, 0.0) for pid, cpu in pids.items())
            deltas[name] = max(0.0, total)
        return deltas
