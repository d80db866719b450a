"""Where every bench's figures are kept: one JSON line per run in ``<FD_BENCH_RESULTS_DIR>/<bench>.jsonl``.

A bench ends with ``publish(name, figures, args)``: it prints the figures as its last line and
appends them, with the exact command that produced them, its settings, the commit and the time,
to the bench's results file. ``python -m harness.report`` renders the benchmark tables of
docs/performance.md (and the README's headline) from these records, and
``tests/unit/test_bench_report.py`` checks that every figure of a generated block is in the
latest record of the command the block names: a figure no run produced, or one from an older
run, fails the test. Commit the results files with the regenerated docs.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

from flightdelay.config import REPO_ROOT, Settings, env_name, load_settings
from harness import machine


def command_line(name: str, argv: list[str], environ: dict[str, str]) -> str:
    """The shell command that ran the bench: the FD_* settings that differ from their defaults
    (the Makefile exports FD_CACHE_DIR at its default, so `make bench` lines stay plain), then
    ``python -m bench.<name>`` and its arguments."""
    defaults = load_settings({})
    given = load_settings({k: v for k, v in environ.items() if k.startswith("FD_")})
    changed = sorted(f"{env_name(f)}={shlex.quote(str(getattr(given, f)))}"
                     for f in Settings.__dataclass_fields__ if getattr(given, f) != getattr(defaults, f))
    return " ".join([*changed, f"python -m bench.{name}", *map(shlex.quote, argv)]).strip()


def commit() -> str | None:
    """The commit the bench ran on, with "+changes" when the tree had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        # The results files themselves change with every run: they do not make the code "changed".
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)bench/results"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+changes" if dirty else "")


def record(name: str, figures: dict, args: Namespace | None, argv: list[str], environ: dict[str, str]) -> dict:
    return {"bench": name, "command": command_line(name, argv, environ),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit(),
            "args": vars(args) if args is not None else {},
            **({} if "machine" in figures else {"machine": machine.describe()}), **figures}


def results_file(s: Settings, name: str) -> Path:
    return Path(s.bench_results_dir) / f"{name}.jsonl"


def publish(name: str, figures: dict, args: Namespace | None = None, argv: list[str] | None = None) -> dict:
    """Print ``figures`` as the bench's last line and append its record to the bench's results file."""
    entry = record(name, figures, args, sys.argv[1:] if argv is None else argv, dict(os.environ))
    path = results_file(load_settings(), name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(entry) + "\n")
    print(f"[bench] figures appended to {path}", flush=True)
    print(json.dumps(entry), flush=True)
    return entry


def history(s: Settings, name: str) -> list[dict]:
    """Every recorded run of one bench, oldest first."""
    path = results_file(s, name)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- checking a block of the docs against the record it quotes --------------------------------------
# A number as the docs write it: 8.2, -4.6, 1,086,000, 4.5(x); not the 99 of "p99" nor a version's "v1".
NUMBER = re.compile(r"(?<![\w.,])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
BENCH_COMMAND = re.compile(r"python -m bench\.(\w+)")


def quoted_command(cell: str) -> str | None:
    """The bench command a text names: the first code span that runs a bench, from the
    last ``&&`` part that does (what comes before it starts servers)."""
    for span in re.findall(r"`([^`]+)`", cell):
        parts = [p.strip() for p in span.split("&&") if BENCH_COMMAND.search(p)]
        if parts:
            return parts[-1]
    return None


def bench_of(command: str) -> str:
    return BENCH_COMMAND.search(command).group(1)


def figures_in(text: str) -> tuple[list[str], list[str]]:
    """The dates and the numbers a text states, code spans left out (they hold commands)."""
    prose = re.sub(r"`[^`]*`", " ", text)
    dates = DATE.findall(prose)
    return dates, NUMBER.findall(DATE.sub(" ", prose))


def known_values(value) -> tuple[set[str], list[float]]:
    """Every date and number in a record, numbers inside its strings included, and in its keys
    too (a query bench names each filter by its values: ``class 3``, ``requests 2026-11-29..``;
    ``page_40`` names page 40)."""
    dates: set[str] = set()
    numbers: list[float] = []
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, dict):
            todo.extend(v.values())
            todo.extend(key.replace("_", " ") for key in v)
        elif isinstance(v, list):
            todo.extend(v)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int | float):
            numbers.append(float(v))
        elif isinstance(v, str):
            found_dates, found_numbers = figures_in(v.replace("T", " "))
            dates.update(found_dates)
            numbers.extend(float(n.replace(",", "")) for n in found_numbers)
    return dates, numbers


def unsupported_figures(text: str, entry: dict) -> list[str]:
    """The dates and numbers in ``text`` that ``entry`` does not hold. A number written with d
    decimals is supported by a recorded value that rounds to it (210 by 210.2, 4.5 by 4.46)."""
    known_dates, known_numbers = known_values(entry)
    dates, numbers = figures_in(text)
    missing = [d for d in dates if d not in known_dates]
    for token in numbers:
        value = float(token.replace(",", ""))
        decimals = len(token.split(".", 1)[1]) if "." in token else 0
        if not any(abs(k - value) <= 0.5 * 10 ** -decimals + 1e-9 for k in known_numbers):
            missing.append(token)
    return missing
