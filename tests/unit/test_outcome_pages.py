"""The live sections of the model, history and status pages (webapp/outcomes.py and
templates/outcomes/), from live metrics as flightdelay.stores.outcomes reads them, without servers."""
import pytest

from flightdelay.outcomes import Metrics, StreamCounts
from flightdelay.stores.mongo import HistoryPage, HistoryQuery
from webapp import create_app, outcomes
from webapp.bridge import OsThreads

T = 1_800_000_000_000
UUIDS = ["6f9619ff-8b86-4d01-b42d-00cf4fc96401", "6f9619ff-8b86-4d01-b42d-00cf4fc96402",
         "6f9619ff-8b86-4d01-b42d-00cf4fc96403"]


def metrics(matched=100, correct=54, predicted=130):
    m = Metrics(predicted=predicted, matched=matched, correct=correct, cancelled=2, diverted=1,
                probability_sum=0.55 * matched, first_flight_date="2013-11-01", last_flight_date="2013-11-07")
    m.confusion[0] = correct
    m.confusion[1] = matched - correct
    return m


class Stores:
    def champion(self):
        return {"source": "shipped", "name": "flight_delay_rf", "version": "default", "run_id": None,
                "metrics": {"holdout_accuracy": 0.5301}, "params": {}, "plots": []}

    def history(self, query):
        rows = [{"UUID": u, "Carrier": "UA", "FlightNum": 1545, "Route": "EWR-IAH", "FlightDate": "2013-11-01",
                 "CRSDepTime": 529, "CRSArrTime": 830, "DepDelay": 2.0, "prediction": 1, "label": "slightly early",
                 "model_version": "default", "requested_at": T} for u in UUIDS]
        return HistoryPage(rows, 3, "about", "counted from the daily summary", HistoryQuery(), None)


@pytest.fixture
def live(monkeypatch):
    """Cassandra's answers, as the store functions give them."""
    from flightdelay.stores import outcomes as store

    monkeypatch.setattr(outcomes.Reader, "session", lambda self: object())
    monkeypatch.setattr(outcomes, "holdout_accuracy", lambda s, v: 0.5301 if v == "default" else 0.52)
    monkeypatch.setattr(store, "version_totals", lambda sess, name: {"default": metrics(), "3": metrics(10, 4, 20)})
    monkeypatch.setattr(store, "flight_date_windows",
                        lambda sess, name, totals: [(T, "default", metrics()), (T + 86_400_000, "3", metrics(10, 4))])
    monkeypatch.setattr(store, "wall_windows", lambda sess, name, since, now: [(T, "default", metrics())])
    monkeypatch.setattr(store, "stream_windows",
                        lambda sess, topic, since, now: [(T, StreamCounts(outcomes=40, matched=30, late=2, invalid=1,
                                                                          lag_ms_sum=40_000, lag_ms_max=2500,
                                                                          lag_count=40))])
    monkeypatch.setattr(store, "stream_total", lambda sess, topic: StreamCounts(outcomes=400, matched=300, late=20,
                                                                                lag_ms_sum=400_000, lag_ms_max=9000,
                                                                                lag_count=400))
    monkeypatch.setattr(store, "scored_by_uuid", lambda sess, uuids: {
        UUIDS[0]: {"status": "scored", "actual_class": 1, "arr_delay": -10.0, "correct": True},
        UUIDS[1]: {"status": "cancelled", "actual_class": None, "arr_delay": None, "correct": None}})


@pytest.fixture
def client():
    class Bridge:
        threads = OsThreads()

    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test"}, bridge=Bridge(),
                     stores=Stores(), start_consumer=False)
    return app.test_client()


def test_the_model_page_shows_live_accuracy_beside_the_holdout_per_version(client, live):
    page = client.get("/model").get_data(as_text=True)
    assert 'id="live-versions"' in page and "default <strong>(served)</strong>" in page
    row = page.split("default <strong>(served)</strong>")[1].split("</tr>")[0]
    assert "0.5301" in row and "<strong>0.5400</strong>" in row and "0.5500" in row  # holdout, live, expected
    assert "<td>27</td>" in row  # awaiting: 130 seen - 100 scored - 2 cancelled - 1 diverted
    assert 'id="live-by-date"' in page and 'id="live-data"' in page and 'id="live-confusion"' in page
    assert "outcomes.js" in page


def test_the_history_page_shows_each_outcome_once_known(client, live):
    page = client.get("/history").get_data(as_text=True)
    assert "<th>Outcome</th>" in page
    assert "-10 min" in page and "✓ right" in page
    assert page.count("awaiting") == 1 and "cancelled" in page


def test_the_status_page_shows_the_outcome_streams_lag_and_match_rate(client, live, monkeypatch):
    monkeypatch.setattr("webapp.pages.service_checks", lambda s: [])  # no server asked
    page = client.get("/status").get_data(as_text=True)
    assert 'id="outcome-stream-table"' in page
    assert '<td id="match-rate">75.0 %</td>' in page and '<td id="match-rate-hour">75.0 %</td>' in page
    assert "1,000 / 9,000 ms" in page  # all time: mean / max lag


def test_without_cassandra_the_sections_say_so_and_the_pages_still_answer(client, monkeypatch):
    monkeypatch.setattr("webapp.pages.service_checks", lambda s: [])
    assert "Live metrics unavailable: Cassandra is not answering (RuntimeError)" in client.get("/model").get_data(as_text=True)
    history = client.get("/history")
    assert history.status_code == 200 and "unknown" in history.get_data(as_text=True)
    assert "Outcome stream counts unavailable" in client.get("/status").get_data(as_text=True)


def test_the_status_page_names_the_model_in_shadow(client, live, monkeypatch):
    from flightdelay import status as job_status

    monkeypatch.setattr("webapp.pages.service_checks", lambda s: [])
    model = job_status.ModelStatus("flight_delay_rf", "4", "mlflow", "compiled")
    running = {"predict": job_status.QueryStatus(True, "q")}
    monkeypatch.setattr("webapp.pages.streaming_status", lambda s: job_status.JobStatus(model, running))
    assert 'id="shadow-version"' not in client.get("/status").get_data(as_text=True)
    shadowed = job_status.JobStatus(job_status.ModelStatus("flight_delay_rf", "4", "mlflow", "compiled", "5",
                                                           "challenger"), running)
    monkeypatch.setattr("webapp.pages.streaming_status", lambda s: shadowed)
    page = client.get("/status").get_data(as_text=True)
    assert 'version <span id="shadow-version">5</span> (challenger)' in page
    assert job_status.JobStatus.from_dict(shadowed.to_dict()) == shadowed  # the status file keeps it
