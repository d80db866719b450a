"""The benchmark tables of docs/performance.md and the README's headline are what
``python -m harness.report`` renders from the committed records (bench/results/*.jsonl), and every
figure in them is in the latest record of the command its block names."""
import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from flightdelay.config import REPO_ROOT, load_settings
from harness import report
from harness.results import bench_of, command_line, history, quoted_command, unsupported_figures


def blocks() -> list[tuple[str, str]]:
    """(where, text) of every generated block: a table block per `### `command`` heading of
    docs/performance.md, a line per headline bench of the README."""
    table = report.generated_part(report.PERFORMANCE.read_text(), report.TABLE)
    headline = report.generated_part(report.README.read_text(), report.HEADLINE)
    return ([("docs/performance.md", b) for b in re.split(r"\n(?=### )", table.strip()) if b]
            + [("README.md", line) for line in headline.strip().splitlines()])


def latest_record(command: str) -> dict | None:
    runs = [r for r in history(load_settings(), bench_of(command)) if r["command"] == command]
    return runs[-1] if runs else None


def make_bench_commands() -> list[str]:
    recipe = (REPO_ROOT / "Makefile").read_text().split("\nbench:", 1)[1].split("\n\n", 1)[0]
    return [re.sub(r"\s*\$\(\w+\)", "", f"python -m bench.{m}") for m in re.findall(r"-m bench\.(\w+)", recipe)]


BLOCKS = blocks()


def test_the_generated_parts_are_what_the_records_give_now():
    """A hand edit of a generated part, or a newer record without `python -m harness.report`, fails here."""
    assert report.stale_parts(load_settings()) == [], "run `python -m harness.report` (make bench-report)"


def test_a_newer_record_makes_the_committed_tables_stale(tmp_path):
    s = load_settings()
    results = tmp_path / "results"
    shutil.copytree(s.bench_results_dir, results)
    newer = {**latest_record(report.HEADLINE_COMMANDS[1]), "finished_at": "2099-01-01T00:00:00Z", "p95_ms": 1.5}
    with (results / "webapp.jsonl").open("a") as out:
        out.write(json.dumps(newer) + "\n")
    assert report.stale_parts(dataclasses.replace(s, bench_results_dir=str(results))) == [
        "docs/performance.md (bench-table)", "README.md (bench-headline)"]


def test_a_hand_edit_of_a_generated_part_is_seen():
    text = report.PERFORMANCE.read_text()
    body = "\n" + report.render_table(report.latest_runs(load_settings()))
    assert report.generated_part(text, report.TABLE) == body
    edited = text.replace("| compiled forest |", "| compiled forest (edited) |", 1)
    assert edited != text and report.generated_part(edited, report.TABLE) != body


def test_splice_replaces_only_the_generated_part():
    text = f"before\n{report.begin_marker('t')}\nold\n{report.end_marker('t')}\nafter\n"
    assert report.splice(text, "t", "new\n") == f"before\n{report.begin_marker('t')}\nnew\n{report.end_marker('t')}\nafter\n"
    with pytest.raises(ValueError):
        report.generated_part("no markers here", "t")


def test_the_tables_have_a_block_per_bench_of_make_bench():
    named = {quoted_command(text) for _, text in BLOCKS}
    assert not set(make_bench_commands()) - named


def test_make_bench_regenerates_the_tables_at_its_end():
    recipe = (REPO_ROOT / "Makefile").read_text().split("\nbench:", 1)[1].split("\n\n", 1)[0]
    assert recipe.strip().splitlines()[-1].strip() == "$(PY) -m harness.report"


@pytest.mark.parametrize(("where", "text"), BLOCKS, ids=[f"{w}:{quoted_command(t)}" for w, t in BLOCKS])
def test_each_figure_of_a_block_is_in_the_latest_run_of_its_command(where, text):
    command = quoted_command(text)
    assert command, f"a generated block in {where} names no bench command: {text[:80]}"
    entry = latest_record(command)
    assert entry, f"no recorded run of `{command}` in bench/results (run it, then commit its results file)"
    missing = unsupported_figures(text, entry)
    assert not missing, (f"figures in the {where} block of `{command}` that its latest run ({entry['finished_at']}, "
                         f"commit {entry['commit']}) did not produce: {missing}")


def test_a_figure_that_no_run_produced_is_caught():
    entry = {"finished_at": "2026-12-06T10:00:00Z", "p99_ms": 114.04, "sent": 1086000, "speedup": 4.46,
             "growth": -4.6, "machine": {"cpu": "AMD EPYC", "cores": 2}, "held_means": "p99 <= 1000 ms"}
    assert unsupported_figures("2026-12-06, 2 cores: p99 114.0 ms, 114 ms; 1,086,000 sent; 4.5x; p99 <= 1,000 ms; "
                               "-4.6 MB", entry) == []
    assert unsupported_figures("p99 114.1 ms", entry) == ["114.1"]
    assert unsupported_figures("measured 2026-12-04", entry) == ["2026-12-04"]
    assert unsupported_figures("1,086,001 sent", entry) == ["1,086,001"]
    assert unsupported_figures("grew 4.6 MB", entry) == ["4.6"]  # the sign is part of the figure
    assert unsupported_figures("`--ramp 5000` 2 cores", entry) == []  # code spans hold commands, not figures


def test_the_recorded_command_is_what_a_reader_would_type():
    assert command_line("pipeline", [], {"FD_CACHE_DIR": str(Path.home() / ".cache" / "flightdelay")}) \
        == "python -m bench.pipeline"
    assert command_line("pipeline", ["--ramp", "1000,2000"], {"FD_SPARK_CLUSTER": "1", "FD_KAFKA_PORT": "9092"}) \
        == "FD_SPARK_CLUSTER=1 python -m bench.pipeline --ramp 1000,2000"


def test_a_filter_named_in_a_record_key_supports_its_values():
    entry = {"history": {"class 3": {"p95_ms": 19.9, "page_40": {}},
                         "requests 2026-11-29..2026-12-06": {"p95_ms": 59.8}}}
    assert unsupported_figures("class 3 19.9 ms; page 40; requests 2026-11-29..2026-12-06 59.8 ms", entry) == []
    assert unsupported_figures("class 4 19.9 ms", entry) == ["4"]
    assert unsupported_figures("requests 2026-11-28..2026-12-06", entry) == ["2026-11-28"]


def test_a_bench_without_a_layout_of_its_own_still_gets_a_block():
    text = report.block({"bench": "new", "command": "python -m bench.new", "finished_at": "2026-12-06T10:00:00Z",
                         "commit": "abc", "machine": {"cpu": "AMD EPYC", "cores": 2}, "p50_ms": 7.5})
    assert text.startswith("### `python -m bench.new`") and "| p50_ms | 7.5 |" in text


def test_a_soak_shows_the_archive_backlog_at_each_minute():
    record = {"bench": "soak", "command": "python -m bench.soak", "finished_at": "2026-12-07T22:19:34Z",
              "commit": "abc", "machine": {"cpu": "Intel Xeon", "cores": 2}, "minutes": 2, "rate_per_s": 1000,
              "warmup_s": 60, "achieved_rate_per_s": 1000.0, "sent": 180000, "accepted": 180000, "lost": 0,
              "duplicated_in_stores": 0, "duplicate_responses": 0, "settled_after_s": 30.5,
              "outputs": {"responses": {"found": 180000, "lost": 0, "duplicated": 0}},
              "rss_mb": {"kafka": {"start": 600, "end": 610, "growth": 10}},
              "rss_samples": [{"minute": 0, "rss_mb": {"kafka": 600}},
                              {"minute": 1.0, "rss_mb": {"kafka": 605},
                               "backlog": {"archive-mongo": 0, "archive-cassandra": 2575, "archive-hdfs": 55681}},
                              {"minute": 2.0, "rss_mb": {"kafka": 610},
                               "backlog": {"archive-mongo": 69981, "archive-cassandra": None, "archive-hdfs": 0}}]}
    text = report.block(record)
    assert "| minute | archive-mongo | archive-cassandra | archive-hdfs |" in text
    assert "| 1 | 0 | 2,575 | 55,681 |" in text and "| 2 | 69,981 | – | 0 |" in text
    older = dict(record, rss_samples=[{"minute": 1.0, "rss_mb": {"kafka": 605}}])  # recorded before the backlog was
    assert "archive-mongo" not in report.block(older)
