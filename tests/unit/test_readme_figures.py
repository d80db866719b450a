"""Every figure in the README's benchmark table is the output of the latest run of the command
beside it: the row's numbers and dates must be in that command's newest record in
bench/results/<bench>.jsonl (written by the bench itself, harness/results.py)."""
import re
from pathlib import Path

import pytest

from flightdelay.config import REPO_ROOT, load_settings
from harness.results import bench_of, command_line, history, quoted_command, unsupported_figures

README = REPO_ROOT / "README.md"
RUN_BEFORE = "(the run before"


def benchmark_rows() -> list[tuple[str, str]]:
    """(command cell, figures cell) of each row of the table under '## Benchmarks'."""
    section = README.read_text().split("\n## Benchmarks", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith(("| command |", "|---")):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            assert len(cells) == 2, f"a benchmark row has two cells (command, figures): {line[:80]}"
            rows.append((cells[0], cells[1]))
    return rows


def quoted_record(command_cell: str) -> tuple[str, dict | None]:
    command = quoted_command(command_cell)
    assert command, f"the row names no bench command: {command_cell[:80]}"
    runs = [r for r in history(load_settings(), bench_of(command)) if r["command"] == command]
    back = 2 if RUN_BEFORE in command_cell else 1
    return command, runs[-back] if len(runs) >= back else None


def make_bench_commands() -> list[str]:
    recipe = (REPO_ROOT / "Makefile").read_text().split("\nbench:", 1)[1].split("\n\n", 1)[0]
    return [re.sub(r"\s*\$\(\w+\)", "", f"python -m bench.{m}") for m in re.findall(r"-m bench\.(\w+)", recipe)]


ROWS = benchmark_rows()


def test_the_benchmark_table_has_rows():
    assert len(ROWS) >= len(make_bench_commands())


@pytest.mark.parametrize(("command_cell", "figures_cell"), ROWS, ids=[quoted_command(c) or c[:30] for c, _ in ROWS])
def test_each_figure_of_a_row_is_in_the_latest_run_of_its_command(command_cell, figures_cell):
    command, entry = quoted_record(command_cell)
    assert entry, f"no recorded run of `{command}` in bench/results (run it, then commit its results file)"
    missing = unsupported_figures(command_cell + " " + figures_cell, entry)
    assert not missing, (f"figures in the README row of `{command}` that its latest run ({entry['finished_at']}, "
                         f"commit {entry['commit']}) did not produce: {missing}")


def test_every_bench_of_make_bench_has_a_row_of_its_latest_run():
    quoted = {quoted_command(c) for c, _ in ROWS if RUN_BEFORE not in c}
    assert not set(make_bench_commands()) - quoted


def test_a_figure_that_no_run_produced_is_caught():
    entry = {"finished_at": "2026-12-06T10:00:00Z", "p99_ms": 114.04, "sent": 1086000, "speedup": 4.46,
             "machine": {"cpu": "AMD EPYC", "cores": 2}, "held_means": "p99 <= 1000 ms"}
    assert unsupported_figures("2026-12-06, 2 cores: p99 114.0 ms, 114 ms; 1,086,000 sent; 4.5x; p99 <= 1,000 ms",
                               entry) == []
    assert unsupported_figures("p99 114.1 ms", entry) == ["114.1"]
    assert unsupported_figures("measured 2026-12-04", entry) == ["2026-12-04"]
    assert unsupported_figures("1,086,001 sent", entry) == ["1,086,001"]
    assert unsupported_figures("`--ramp 5000` 2 cores", entry) == []  # code spans hold commands, not figures


def test_the_recorded_command_is_what_a_reader_would_type():
    assert command_line("pipeline", [], {"FD_CACHE_DIR": str(Path.home() / ".cache" / "flightdelay")}) \
        == "python -m bench.pipeline"
    assert command_line("pipeline", ["--ramp", "1000,2000"], {"FD_SPARK_CLUSTER": "1", "FD_KAFKA_PORT": "9092"}) \
        == "FD_SPARK_CLUSTER=1 python -m bench.pipeline --ramp 1000,2000"


def test_a_filter_named_in_a_record_key_supports_its_values():
    entry = {"history": {"class 3": {"p95_ms": 19.9}, "requests 2026-11-29..2026-12-06": {"p95_ms": 59.8}}}
    assert unsupported_figures("class 3 19.9 ms; requests 2026-11-29..2026-12-06 59.8 ms", entry) == []
    assert unsupported_figures("class 4 19.9 ms", entry) == ["4"]
    assert unsupported_figures("requests 2026-11-28..2026-12-06", entry) == ["2026-11-28"]
