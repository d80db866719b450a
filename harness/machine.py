"""What the figures were measured on: the CPU, and how busy the machine was before the bench.

A benchmark's figures depend on the machine and on whatever else runs on it (another stack's
compaction, a test run): the benches print both so that a figure can be reproduced or doubted.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def describe() -> dict:
    """The CPU model, cores and memory."""
    model, mem_kib = platform.processor() or "unknown", 0
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
        mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal"))
    except (OSError, StopIteration, ValueError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1)}


def _cpu_times() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields), idle


def _process_ticks() -> dict[int, tuple[str, int]]:
    ticks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()
        ticks[int(entry.name)] = (name, int(rest[11]) + int(rest[12]))  # utime + stime
    return ticks


def busy(seconds: float = 3.0) -> dict:
    """How busy the machine is over ``seconds``: the share of all cores in use and the
    processes using the most CPU."""
    total0, idle0 = _cpu_times()
    procs0 = _process_ticks()
    time.sleep(seconds)
    total1, idle1 = _cpu_times()
    procs1 = _process_ticks()
    used = 1 - (idle1 - idle0) / max(1, total1 - total0)
    top = sorted(((ticks - procs0[pid][1], pid, name) for pid, (name, ticks) in procs1.items() if pid in procs0),
                 reverse=True)[:3]
    return {"cpu_busy_pct": round(100 * used, 1), "load_average_1m": os.getloadavg()[0],
            "top": [f"{name} (pid {pid}) {100 * t / CLOCK_TICKS / seconds:.0f}%" for t, pid, name in top if t > 0]}


def wait_until_quiet(say, below_pct: float = 30.0, at_most_s: float = 180.0) -> None:
    """Wait, at most ``at_most_s``, until the machine is at most ``below_pct`` busy: a bench that
    follows `make up` would otherwise measure NiFi or Airflow still starting in the background."""
    began = time.monotonic()
    while True:
        state = busy()
        if state["cpu_busy_pct"] <= below_pct:
            return
        if time.monotonic() - began > at_most_s:
            say(f"the machine did not get below {below_pct:g}% busy in {at_most_s:g} s; going on")
            return
        say(f"waiting for the machine to settle: {state['cpu_busy_pct']}% busy (most: {', '.join(state['top'])})")


def warn_if_busy(say, threshold_pct: float = 25.0) -> dict:
    """Measure the machine before a bench and say so when it is not quiet."""
    state = busy()
    line = f"machine busy before the bench: {state['cpu_busy_pct']}% of all cores, load average {state['load_average_1m']:.1f}"
    if state["top"]:
        line += f" (most: {', '.join(state['top'])})"
    say(line)
    if state["cpu_busy_pct"] > threshold_pct:
        say("WARNING: the machine is not quiet; latencies will be higher than on an idle machine "
            "(stop other stacks, e.g. `make down`, for figures comparable to the README's)")
    return state


# -- which processes used the CPU ---------------------------------------------------------------
def children_by_parent() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # a process that just ended
            continue
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def descendants(pid: int, tree: dict[int, list[int]]) -> list[int]:
    """``pid`` and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


class CpuShares:
    """CPU used by each named group of processes between ``start()`` and ``stop()``, in % of one
    core (200 = both cores of a 2-core machine), with the rest of the machine as "other".
    ``groups()`` maps a name to the root pids of that group; it is asked at both ends, so that
    processes started meanwhile (a PostgreSQL backend per connection) are counted from zero."""

    def __init__(self, groups):
        self.groups = groups

    def _sample(self) -> tuple[float, int, dict[int, tuple[str, int]], dict[str, set[int]]]:
        tree = children_by_parent()
        members = {name: {p for root in roots for p in descendants(root, tree)} for name, roots in self.groups().items()}
        total, idle = _cpu_times()
        return time.monotonic(), total - idle, _process_ticks(), members

    def start(self) -> None:
        self.began = self._sample()

    def stop(self) -> dict[str, float]:
        t0, busy0, ticks0, members0 = self.began
        t1, busy1, ticks1, members1 = self._sample()
        per_core = 100 / CLOCK_TICKS / max(1e-6, t1 - t0)

        def used(pid: int) -> int:
            return ticks1[pid][1] - (ticks0[pid][1] if pid in ticks0 and ticks0[pid][0] == ticks1[pid][0] else 0)

        shares, counted = {}, set()
        for name in members1:
            pids = (members0.get(name, set()) | members1[name]) & ticks1.keys() - counted
            counted |= pids
            shares[name] = round(sum(used(p) for p in pids) * per_core, 1)
        shares["other"] = round(max(0.0, (busy1 - busy0) * per_core - sum(shares.values())), 1)
        return dict(sorted(shares.items(), key=lambda kv: -kv[1]))
