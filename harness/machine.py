"""What the figures were measured on: the CPU, how busy the machine was before the bench, and
which processes used the CPU and memory meanwhile (through psutil).

A benchmark's figures depend on the machine and on whatever else runs on it (another stack's
compaction, a test run): the benches print both so that a figure can be reproduced or doubted.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import psutil


def describe() -> dict:
    """The CPU model, cores and memory."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)}


def cpu_model() -> str:
    """The CPU's model name (psutil has none: /proc/cpuinfo's first "model name")."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def _busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (neither idle nor waiting for I/O)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal  # guest time is within user and nice


def _cpu_seconds_by_process() -> dict[tuple[int, float], tuple[str, float]]:
    """(pid, start time) -> (command name, user + system CPU seconds) of every process; the start
    time tells a process from a later one that got the same pid."""
    out = {}
    for proc in psutil.process_iter(["name", "cpu_times", "create_time"]):
        info = proc.info
        if info["cpu_times"] is not None:
            out[(proc.pid, info["create_time"])] = (info["name"], info["cpu_times"].user + info["cpu_times"].system)
    return out


def busy(seconds: float = 3.0) -> dict:
    """How busy the machine is over ``seconds``: the share of all cores in use and the
    processes using the most CPU."""
    began, busy0, procs0 = time.monotonic(), _busy_seconds(), _cpu_seconds_by_process()
    time.sleep(seconds)
    elapsed, busy1, procs1 = time.monotonic() - began, _busy_seconds(), _cpu_seconds_by_process()
    used = (busy1 - busy0) / (elapsed * (os.cpu_count() or 1))
    top = sorted(((cpu - procs0[key][1], key[0], name) for key, (name, cpu) in procs1.items() if key in procs0),
                 reverse=True)[:3]
    return {"cpu_busy_pct": round(min(100.0, 100 * used), 1), "load_average_1m": os.getloadavg()[0],
            "top": [f"{name} (pid {pid}) {100 * cpu / elapsed:.0f}%" for cpu, pid, name in top if cpu > 0]}


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
            "(stop other stacks, e.g. `make down`, for figures comparable to docs/performance.md's)")
    return state


def before_bench(say, settle: bool = False) -> dict:
    """Say what the bench runs on and how busy the machine is; with ``settle``, first wait for it
    to quiet down (a bench that follows `make up` would measure NiFi still starting). The
    machine's description, with ``before``: how busy it was, for the bench's record."""
    host = describe()
    say(f"machine: {host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB")
    if settle:
        wait_until_quiet(say)
    host["before"] = warn_if_busy(say)
    return host


# -- processes -----------------------------------------------------------------------------------
def process_tree(*pids: int) -> list[psutil.Process]:
    """The processes ``pids`` and every process below them (those that have ended left out)."""
    out = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            out += [root, *root.children(recursive=True)]
        except psutil.Error:  # ended meanwhile
            continue
    return out


def rss_mb(processes: list[psutil.Process]) -> float:
    """Resident memory of ``processes`` together, in MB (one that ended meanwhile counts 0)."""
    total = 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def jvm_child(pid: int) -> int | None:
    """The java process among ``pid``'s descendants (pyspark starts the JVM as a child)."""
    return next((p.pid for p in process_tree(pid)[1:] if command_name(p) == "java"), None)


def command_name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return "?"


class CpuShares:
    """CPU used by each named group of processes between ``start()`` and ``stop()``, in % of one
    core (200 = both cores of a 2-core machine), with the rest of the machine as "other".
    ``groups()`` maps a name to the root pids of that group; it is asked at both ends, so that
    processes started meanwhile (a PostgreSQL backend per connection) are counted from zero."""

    def __init__(self, groups):
        self.groups = groups

    def _sample(self) -> tuple[float, float, dict, dict[str, set[tuple[int, float]]]]:
        members = {name: {(p.pid, p.create_time()) for p in process_tree(*roots) if _started(p)}
                   for name, roots in self.groups().items()}
        return time.monotonic(), _busy_seconds(), _cpu_seconds_by_process(), members

    def start(self) -> None:
        self.began = self._sample()

    def stop(self) -> dict[str, float]:
        t0, busy0, cpu0, members0 = self.began
        t1, busy1, cpu1, members1 = self._sample()
        per_core = 100 / max(1e-6, t1 - t0)

        def used(key) -> float:
            return cpu1[key][1] - (cpu0[key][1] if key in cpu0 else 0.0)

        shares, counted = {}, set()
        for name in members1:
            keys = (members0.get(name, set()) | members1[name]) & cpu1.keys() - counted
            counted |= keys
            shares[name] = round(sum(used(k) for k in keys) * per_core, 1)
        shares["other"] = round(max(0.0, (busy1 - busy0) * per_core - sum(shares.values())), 1)
        return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def _started(proc: psutil.Process) -> bool:
    """Whether ``proc`` still exists (its start time is cached on the object from then on)."""
    try:
        proc.create_time()
        return True
    except psutil.Error:
        return False
