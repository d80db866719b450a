"""The model core without a server: the models/ layout, the promotion rule, the alias watcher
(the job and the web app follow the registry through it), the web app's reference following
the alias, and the CSV data source of training (pandas only, no Spark)."""
import dataclasses

import pytest

from flightdelay import registry
from flightdelay.config import REPO_ROOT, load_settings
from flightdelay.model_dir import SHIPPED, SHIPPED_VERSION
from flightdelay.reference import load_reference
from flightdelay.serving import AliasWatcher, ServedModel, ServedReference
from training import data
from training.tracking import Baseline, promotion_decision


def test_the_shipped_model_folder_has_the_layout_training_writes():
    assert SHIPPED.root == REPO_ROOT / "models"
    assert (SHIPPED.pipeline / "metadata").is_dir()
    assert load_reference(SHIPPED.reference).sha256 == SHIPPED.load_metrics()["reference_sha256"]


@pytest.mark.parametrize("candidate, baseline, promoted", [
    (0.55, Baseline("3", 0.53), True),
    (0.53, Baseline("3", 0.53), False),          # a tie keeps what is served
    (0.50, Baseline(SHIPPED_VERSION, 0.53), False),
])
def test_only_a_strictly_better_model_is_promoted(candidate, baseline, promoted):
    decided, reason = promotion_decision(candidate, baseline)
    assert decided is promoted
    assert f"{candidate:.4f}" in reason and f"{baseline.accuracy:.4f}" in reason
    if baseline.version == SHIPPED_VERSION:
        assert "shipped default model" in reason


class FakeRegistry:
    """Stands in for the MLflow calls the serving side makes (pure logic under test)."""

    def __init__(self, monkeypatch):
        self.version, self.fail_download, self.down, self.asked = None, False, False, 0
        monkeypatch.setattr(registry, "champion", self.champion)
        monkeypatch.setattr(registry, "reference_of_version", self.reference_of_version)

    def champion(self, s, mlflow_client=None):
        self.asked += 1
        if self.down:
            raise ConnectionError("registry down")
        return None if self.version is None else dataclasses.make_dataclass("Version", ["version"])(self.version)

    def reference_of_version(self, s, version):
        if self.fail_download:
            raise OSError("artifact store down")
        ref = load_reference(SHIPPED.reference)
        return dataclasses.replace(ref, routes={**ref.routes, "EWR-ZZZ": {"distance": 1.0, "typical_elapsed": None}},
                                   meta={"version": version})


def test_the_alias_watcher_calls_back_when_the_alias_moves_and_survives_failures(monkeypatch):
    fake = FakeRegistry(monkeypatch)
    taken = []

    def on_move(version):
        if version == "6":
            raise RuntimeError("model folder unreadable")
        taken.append(version)
        return version != "5"                        # "5" cannot be served (yet)

    watcher = AliasWatcher(load_settings({}), SHIPPED_VERSION, on_move)
    assert watcher.check() is False and taken == []  # no champion: nothing to do
    fake.version = "4"
    assert watcher.check() is True and watcher.serving == "4" and taken == ["4"]
    assert watcher.check() is False and taken == ["4"]           # unchanged alias: no call back
    fake.version = "5"
    assert watcher.check() is False and watcher.serving == "4"   # refused: asked again next time
    assert watcher.check() is False and taken == ["4", "5", "5"]
    fake.version, fake.down = "7", True                          # registry down: keep serving 4
    assert watcher.check() is False and watcher.serving == "4"
    fake.version, fake.down = "6", False                         # the call back fails: keep serving 4
    assert watcher.check() is False and watcher.serving == "4"


def test_the_alias_watcher_polls_every_poll_interval_and_never_dies(monkeypatch):
    fake = FakeRegistry(monkeypatch)
    fake.down = True
    naps = []

    class Enough(Exception):
        pass

    def sleep(seconds):
        naps.append(seconds)
        fake.down = False
        fake.version = "8" if len(naps) >= 2 else None
        if len(naps) == 4:
            raise Enough

    moved = []
    watcher = AliasWatcher(load_settings({"FD_MODEL_POLL_S": "3"}), SHIPPED_VERSION,
                           lambda version: moved.append(version) or True)
    with pytest.raises(Enough):
        watcher.follow(sleep)
    assert naps == [3.0] * 4 and fake.asked == 4                 # one question per interval
    assert moved == ["8"] and watcher.serving == "8"


class StubQuery:
    def __init__(self, model):
        self.model, self.stopped = model, False

    def stop(self):
        self.stopped = True


def test_the_job_restarts_its_predict_query_on_the_new_champion(monkeypatch):
    from spark_jobs import supervisor

    fake = FakeRegistry(monkeypatch)
    broken = {"5"}

    def load_registered(s, version):
        if version in broken:
            raise OSError("model artifact missing")
        return ServedModel(s.model_name, version, pipeline=None, reference=None, source="mlflow")

    monkeypatch.setattr(supervisor, "load_registered", load_registered)
    monkeypatch.setattr(supervisor, "registry_aliases", lambda s: {})  # no shadow model (test_shadow_model.py)
    job = supervisor.PredictionJob(spark=None, settings=load_settings({}))
    job.served = ServedModel(job.settings.model_name, SHIPPED_VERSION, None, None, "shipped")
    job.watcher = AliasWatcher(job.settings, SHIPPED_VERSION, job.swap_model)
    first = StubQuery(SHIPPED_VERSION)
    job.queries = {"predict": first}
    job.factories = {"predict": lambda: StubQuery(job.served.version)}

    fake.version = "5"                               # not loadable: the running query stays
    assert job.watcher.check() is False and job.queries["predict"] is first and not first.stopped
    fake.version = "6"
    assert job.watcher.check() is True
    assert first.stopped and job.queries["predict"].model == "6" and job.served.version == "6"
    assert job.watcher.check() is False              # the same champion: no second restart


def test_the_web_apps_reference_follows_the_alias(monkeypatch):
    fake = FakeRegistry(monkeypatch)
    served = ServedReference(load_settings({}))
    assert served.version == SHIPPED_VERSION and not served.current().has_route("EWR", "ZZZ")
    assert served.watcher.check() is False           # no champion: the shipped reference stays

    fake.version = "4"
    assert served.watcher.check() is True
    assert served.version == "4" and served.current().has_route("EWR", "ZZZ")
    assert served.watcher.check() is False           # unchanged alias: nothing downloaded again

    fake.version, fake.fail_download = "5", True     # a failed download keeps the last good one
    assert served.watcher.check() is False and served.version == "4"
    fake.version, fake.down = "6", True              # registry unreachable: keep serving version 4
    assert served.watcher.check() is False and served.version == "4"


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
