"""Starting, probing and stopping one server process, tracked by a pid file.

A service is identified by its pid *and* the process start time, so a recycled pid is never
mistaken for a server we started, and `down` only ever signals processes this launcher started.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A server could not be installed, started or reached; the message names service and log."""


@dataclass(frozen=True)
class Tracked:
    pid: int
    started: str  # the process's start time (proc_start_time), guards against pid reuse


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_start_time(pid: int) -> str | None:
    """When ``pid`` started, in clock ticks after boot (the kernel's own figure, which pid files
    have always held). psutil gives it as seconds since the epoch, i.e. plus the boot time, which
    moves when the system clock is stepped: taking the boot time off again keeps a server's
    identity across a clock step."""
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        return None
    return str(round((created - psutil.boot_time()) * CLOCK_TICKS))


def read_tracked(pid_file: Path) -> Tracked | None:
    try:
        data = json.loads(pid_file.read_text())
        return Tracked(int(data["pid"]), str(data["started"]))
    except (OSError, ValueError, KeyError):
        return None


def alive(tracked: Tracked | None) -> bool:
    return tracked is not None and proc_start_time(tracked.pid) == tracked.started and not _zombie(tracked.pid)


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def spawn(cmd: list[str], *, cwd: Path, log_file: Path, pid_file: Path, env: dict[str, str],
          nice: int = 0) -> Tracked:
    """Start ``cmd`` in its own session (so it outlives us and can be stopped as a group), at
    CPU niceness ``nice`` (``nice`` execs the command: the pid stays the server's), the
    niceness given to the session's scheduler group too (see ``set_session_niceness``)."""
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    set_session_niceness(proc.pid, nice)
    started = proc_start_time(proc.pid) or "?"
    tracked = Tracked(proc.pid, started)
    pid_file.write_text(json.dumps({"pid": tracked.pid, "started": tracked.started, "cmd": cmd[:3]}))
    return tracked


def set_session_niceness(pid: int, nice: int) -> None:
    """With the kernel's autogroup scheduling on (Debian's default), every new session is a
    scheduler group of its own and CPU is shared between groups first: a process's niceness
    then ranks it only against its own session. A store started at nice 10 in its own session
    still took an equal share beside the predict job (FerretDB 70 % of a core at 10,000/s);
    the session's group gets the niceness here. Without autogroup the file is absent and the
    process's niceness already counts machine-wide."""
    if not nice:
        return
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError as exc:
        log.debug("autogroup niceness of pid %s not set (%s): per-process niceness only", pid, exc)


def terminate(tracked: Tracked, *, grace: float = 30.0) -> None:
    """SIGTERM the process group we started, then SIGKILL whatever is left after ``grace``."""
    if not alive(tracked):
        return
    _signal_group(tracked.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(tracked):
            _reap(tracked.pid)
            return
        time.sleep(0.2)
    log.warning("pid %s did not stop after %.0f s, sending SIGKILL", tracked.pid, grace)
    _signal_group(tracked.pid, signal.SIGKILL)
    _reap(tracked.pid)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # spawn() made pid the leader of its own session and group
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def until(predicate, timeout: float, what: str, interval: float = 1.0):
    """Ask ``predicate`` every ``interval`` s until it returns something truthy and return that;
    an exception counts as "not yet". StackError naming ``what`` (and the last exception) after
    ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value, error = predicate(), None
        except Exception as exc:  # the server is still starting or electing: ask again
            value, error = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what}"
                             + (f" (last: {type(error).__name__}: {error})" if error else ""))
        time.sleep(interval)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log yet)"
