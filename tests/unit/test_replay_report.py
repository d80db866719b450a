"""bench.replay's block of docs/performance.md: every figure it writes is one of its record's."""
from harness import report
from harness.results import unsupported_figures

RECORD = {
    "bench": "replay", "command": "python -m bench.replay", "finished_at": "2026-12-07T10:00:00Z", "commit": "abc",
    "args": {"first_day": "2013-11-01", "days": 7, "warmup_flights": 500, "settle": 900.0},
    "machine": {"cpu": "AMD EPYC", "cores": 2, "memory_gib": 23.5},
    "flights": 6486, "first_flight_date": "2013-11-01", "last_flight_date": "2013-11-07", "settled": True,
    "answered": 6486, "resolved": 6486, "scored": 6374, "cancelled": 88, "diverted": 24, "unresolved": 0,
    "sending_s": 4.2, "wall_s": 31.7, "predicted_per_s": 1530.2, "scored_per_s": 204.6,
    "predict_p50_ms": 41.3, "predict_p99_ms": 812.5, "lag_p50_ms": 1450.1, "lag_p99_ms": 3921.0,
    "probe_rate_per_s": 20.0, "probe_before": {"sent": 400, "answered": 400, "p50_ms": 12.1, "p99_ms": 30.2},
    "probe_burst": {"sent": 30, "answered": 30, "p50_ms": 14.9, "p99_ms": 66.7},
    "probe_join": {"sent": 300, "answered": 299, "p50_ms": 6.1, "p99_ms": 21.4},
    "driver_rss_mb_before": 301.2, "driver_rss_mb_peak": 355.9, "jvm_rss_mb_before": 1020.4, "jvm_rss_mb_peak": 1190.2,
    "live_accuracy": 0.5412, "live_macro_f1": 0.5633, "expected_accuracy": 0.5518, "holdout_accuracy": 0.5301,
    "holdout_macro_f1": 0.5608, "warmup": "500 flights of 2013-10-31, not counted",
    "confusion": [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]],
}


def test_the_replay_block_quotes_only_its_record():
    text = report.block(RECORD)
    assert text.startswith("### `python -m bench.replay`")
    for figure in ("6,486", "1,530.2", "204.6", "3,921", "812.5", "355.9", "0.5412", "0.5301", "2013-11-07", "66.7", "21.4"):
        assert figure in text, figure
    assert unsupported_figures(text, RECORD) == []
    assert unsupported_figures(text.replace("0.5412", "0.6412"), RECORD) == ["0.6412"]


def test_the_replay_bench_comes_after_the_pipeline_as_make_bench_runs_them():
    assert report.ORDER.index("replay") == report.ORDER.index("pipeline") + 1
    assert report.LAYOUTS["replay"] is report.replay
