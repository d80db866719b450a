"""The registry module without a server: the models/ layout, the promotion rule, the web app's
reference following the alias, and the CSV data source of training (pandas only, no Spark)."""
import dataclasses

import pytest

from flightdelay import registry
from flightdelay.config import REPO_ROOT, load_settings
from training import data
from training.tracking import Baseline, promotion_decision


def test_the_shipped_model_folder_has_the_layout_training_writes():
    assert registry.SHIPPED.root == REPO_ROOT / "models"
    assert (registry.SHIPPED.pipeline / "metadata").is_dir()
    assert registry.shipped_reference().sha256 == registry.SHIPPED.load_metrics()["reference_sha256"]


@pytest.mark.parametrize("candidate, baseline, promoted", [
    (0.55, Baseline("3", 0.53), True),
    (0.53, Baseline("3", 0.53), False),          # a tie keeps what is served
    (0.50, Baseline(registry.SHIPPED_VERSION, 0.53), False),
])
def test_only_a_strictly_better_model_is_promoted(candidate, baseline, promoted):
    decided, reason = promotion_decision(candidate, baseline)
    assert decided is promoted
    assert f"{candidate:.4f}" in reason and f"{baseline.accuracy:.4f}" in reason
    if baseline.version == registry.SHIPPED_VERSION:
        assert "shipped default model" in reason


class FakeRegistry:
    """Stands in for the MLflow calls of ServedReference (pure logic under test)."""

    def __init__(self, monkeypatch):
        self.version, self.fail_download = None, False
        monkeypatch.setattr(registry, "champion_version", lambda s: self.version)
        monkeypatch.setattr(registry, "reference_of_version", self.reference_of_version)

    def reference_of_version(self, s, version):
        if self.fail_download:
            raise OSError("artifact store down")
        ref = registry.shipped_reference()
        return dataclasses.replace(ref, routes={**ref.routes, "EWR-ZZZ": {"distance": 1.0, "typical_elapsed": None}},
                                   meta={"version": version})


def test_the_web_apps_reference_follows_the_alias(monkeypatch):
    fake = FakeRegistry(monkeypatch)
    served = registry.ServedReference(load_settings({}))
    assert served.version == registry.SHIPPED_VERSION and not served.current().has_route("EWR", "ZZZ")
    assert served.refresh() is False                 # no champion: the shipped reference stays

    fake.version = "4"
    assert served.refresh() is True
    assert served.version == "4" and served.current().has_route("EWR", "ZZZ")
    assert served.refresh() is False                 # unchanged alias: nothing downloaded again

    fake.version, fake.fail_download = "5", True     # a failed download keeps the last good one
    assert served.refresh() is False and served.version == "4"
    fake.version = None                              # registry unreachable: keep serving version 4
    assert served.refresh() is False and served.version == "4"


HEADER = "year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,carrier,flight,origin,dest,distance"
ROWS = [
    "2014,10,1,517,515,2,830,819,11,UA,1545,EWR,IAH,1400",       # train side (before 2014-11-01)
    "2014,10,2,,515,,,819,,UA,1545,EWR,IAH,1400",                # cancelled: excluded and counted
    "2014,11,3,533,529,4,850,830,20,UA,1714,LGA,IAH,1416",       # holdout side
    "2014,2,30,533,529,4,850,830,20,UA,1714,LGA,IAH,1416",       # impossible date: invalid
    "2014,11,4,abc,529,4,850,830,20,UA,1714,LGA,IAH,1416",       # unreadable time: invalid
    "2014,11,5,533,529,4,850,830,20,UA,,LGA,IAH,1416",           # missing flight number: invalid
]


def write_csv(path, header=HEADER, rows=ROWS):
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def test_a_csv_source_is_checked_and_bad_rows_are_counted_not_dropped_silently(tmp_path):
    summary = data.check_source(write_csv(tmp_path / "flights.csv"), "2014-11-01")
    assert (summary["rows"], summary["flown"], summary["cancelled_excluded"], summary["invalid_excluded"]) == (3, 2, 1, 3)
    assert (summary["train_rows"], summary["holdout_rows"]) == (1, 1)
    assert (summary["first_date"], summary["last_date"]) == ("2014-10-01", "2014-11-03")


def test_a_csv_without_a_needed_column_or_with_an_empty_split_is_refused(tmp_path):
    with pytest.raises(data.DataError, match="lacks the column.*arr_delay"):
        data.check_source(write_csv(tmp_path / "a.csv", HEADER.replace("arr_delay", "arr_late")), "2014-11-01")
    with pytest.raises(data.DataError, match="empty split"):
        data.check_source(write_csv(tmp_path / "b.csv"), "2013-11-01")
    with pytest.raises(data.DataError, match="cannot read"):
        data.check_source(str(tmp_path / "missing.csv"), "2013-11-01")
