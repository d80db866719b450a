"""NiFi's text archive read from disk, and its section of the web app's archive page."""
import json
from datetime import datetime, timezone

from flightdelay.config import load_settings
from flightdelay.stores import text_archive


def write(directory, name, lines, newline_at_end=True):
    directory.mkdir(parents=True, exist_ok=True)
    body = "\n".join(json.dumps(line) for line in lines) + ("\n" if newline_at_end else "")
    (directory / name).write_text(body)


def test_newest_files_come_first_with_their_line_counts(tmp_path):
    write(tmp_path, "predictions-20261128-100000.txt", [{"UUID": "a"}, {"UUID": "b"}])
    write(tmp_path, "predictions-20261128-100010.txt", [{"UUID": "c"}], newline_at_end=False)
    write(tmp_path, "predictions-20261127-235950.txt", [{"UUID": str(i)} for i in range(5)])
    newest = text_archive.newest_files(tmp_path, limit=2)
    assert [f["name"] for f in newest] == ["predictions-20261128-100010.txt", "predictions-20261128-100000.txt"]
    assert [f["lines"] for f in newest] == [1, 2]
    assert newest[0]["cut_at"] == datetime(2026, 11, 28, 10, 0, 10, tzinfo=timezone.utc)


def test_files_being_written_and_other_names_are_not_listed(tmp_path):
    write(tmp_path, ".predictions-20261128-100000.txt", [{"UUID": "partial"}])  # PutFile's temp name
    write(tmp_path, "predictions-20261399-100000.txt", [{"UUID": "bad month"}])
    write(tmp_path, "notes.txt", [{"x": 1}])
    write(tmp_path, "predictions-20261128-100000.txt", [{"UUID": "a"}])
    assert [f.name for f in text_archive.archive_files(tmp_path)] == ["predictions-20261128-100000.txt"]


def test_missing_directory_is_an_empty_archive(tmp_path):
    summary = text_archive.summary(tmp_path / "not-yet")
    assert summary["files"] == 0 and summary["newest"] == []


def test_a_bad_line_is_reported_not_dropped(tmp_path):
    (tmp_path / "predictions-20261128-100000.txt").write_text('{"UUID": "a"}\nnot json\n[1]\n\n{"UUID": "b"}\n')
    records = list(text_archive.read_predictions(tmp_path / "predictions-20261128-100000.txt"))
    assert [r.get("UUID") for r in records] == ["a", None, None, "b"]
    assert [r["_invalid"] for r in records if "_invalid" in r] == ["not json", "[1]"]


class HdfsDown:
    def archive_summary(self):
        raise ConnectionError("HDFS down")


def test_archive_page_lists_nifi_files_even_when_hdfs_is_down(tmp_path):
    from tests.unit.test_webapp import RecordingBridge
    from webapp import create_app

    settings = load_settings(state_dir=str(tmp_path))
    write(settings.nifi_archive, "predictions-20261128-100000.txt", [{"UUID": "a"}, {"UUID": "b"}, {"UUID": "c"}])
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test"}, settings=settings,
                     bridge=RecordingBridge(), stores=HdfsDown(), start_consumer=False)
    page = app.test_client().get("/archive").get_data(as_text=True)
    assert "HDFS archive could not be read" in page
    assert "predictions-20261128-100000.txt" in page
    assert "<td>2026-11-28 10:00:00</td><td>3</td>" in page
