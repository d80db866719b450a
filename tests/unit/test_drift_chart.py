"""The model page's drift section (webapp/outcomes.py drift_section, templates/outcomes/_drift.html)
from the monitor's windows as flightdelay.stores.monitor reads them, without servers."""
from tests.unit.test_outcome_pages import client  # noqa: F401  (the model page's test client, a fixture)
from webapp import outcomes

T = 1_800_000_000_000


def window(start, version, max_psi, verdict, alert):
    psi = {"DepDelay": max_psi, "DepHour": 0.01, "Carrier": 0.02, "Route": 0.03, "prediction": 0.01}
    return {"model_name": "flight_delay_rf", "model_version": version, "window_start": start, "window_end": start + 60_000,
            "predictions": 1000, "malformed": 0, "drift": verdict, "worst_feature": "DepDelay", "max_psi": max_psi,
            "psi": psi, "js": {k: v / 4 for k, v in psi.items()}, "matched": 0, "live_accuracy": None,
            "holdout_accuracy": 0.53, "accuracy_drop": None, "accuracy": "insufficient", "alert": alert,
            "reference": "models/monitor_reference.json", "scored_at": start + 61_000}


def test_the_model_page_charts_the_monitor_windows(client, monkeypatch):  # noqa: F811
    from flightdelay.stores import monitor as store

    monkeypatch.setattr(outcomes.Reader, "session", lambda self: object())
    monkeypatch.setattr(store, "windows_since", lambda sess, name, since, now: [
        window(T, "default", 0.02, "none", False), window(T + 60_000, "default", 0.91, "significant", True)])
    page = client.get("/model").get_data(as_text=True)
    assert 'id="drift-psi"' in page and 'id="drift-data"' in page and "drift.js" in page
    assert '<strong id="drift-last-verdict">significant</strong>' in page
    assert "<th>DepDelay</th><td>0.910</td>" in page and "<span id=\"drift-alerts\">1 alert(s)</span>" in page


def test_no_windows_and_no_cassandra_are_said_plainly(client, monkeypatch):  # noqa: F811
    from flightdelay.stores import monitor as store

    monkeypatch.setattr(outcomes.Reader, "session", lambda self: object())
    monkeypatch.setattr(store, "windows_since", lambda sess, name, since, now: [])
    assert 'id="drift-empty"' in client.get("/model").get_data(as_text=True)

    def down(self):
        raise RuntimeError("Cassandra is not answering (NoHostAvailable)")

    monkeypatch.setattr(outcomes.Reader, "session", down)
    page = client.get("/model")
    assert page.status_code == 200 and "Drift scores unavailable: Cassandra is not answering" in page.get_data(as_text=True)
