"""The parquet archive's commit-log reading (flightdelay.stores.parquet), without HDFS."""
import json

import pytest

from flightdelay.stores.parquet import committed_files, latest_log_files, parse_log, partition_value


def test_latest_log_files_start_at_the_newest_compaction():
    names = ["0", "1", "8", "9.compact", "10", "11", "19.compact", "20", "21", ".2.tmp"]
    assert latest_log_files(names) == ["19.compact", "20", "21"]
    assert latest_log_files(["0", "1", "2"]) == ["0", "1", "2"]
    assert latest_log_files([]) == []


def test_parse_log_and_committed_files():
    text = "v1\n" + "\n".join(json.dumps(e) for e in [
        {"path": "hdfs://127.0.0.1:8020/a/FlightDate=2013-12-24/part-0.parquet", "action": "add"},
        {"path": "hdfs://127.0.0.1:8020/a/FlightDate=2013-12-25/part-1.parquet", "action": "add"},
        {"path": "hdfs://127.0.0.1:8020/a/FlightDate=2013-12-24/part-0.parquet", "action": "delete"},
    ])
    files = committed_files(parse_log(text))
    assert files == ["/a/FlightDate=2013-12-25/part-1.parquet"]
    assert partition_value(files[0], "FlightDate") == "2013-12-25"


def test_committed_files_since_a_time_leave_older_ones_out():
    entries = [{"path": f"hdfs://h/a/part-{i}.parquet", "action": "add", "modificationTime": 1000 * i} for i in range(4)]
    assert committed_files(entries, since_ms=2000) == ["/a/part-2.parquet", "/a/part-3.parquet"]
    assert len(committed_files(entries)) == 4


def test_parse_log_rejects_other_files():
    with pytest.raises(ValueError):
        parse_log('{"path": "x"}')
