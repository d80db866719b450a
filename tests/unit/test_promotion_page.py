"""The model page's promotion section (webapp/outcomes.py promotion_section,
templates/outcomes/_promotion.html) from the contests and events as flightdelay.stores.promotion
reads them, without servers: the running contest's figures, the events, and a Cassandra that does
not answer said plainly."""
from tests.unit.test_outcome_pages import client  # noqa: F401  (the model page's test client, a fixture)
from webapp import outcomes

T = 1_800_000_000_000


def contest(champion, shadow, role="challenger", state="wait", updated=T):
    return {"model_name": "flight_delay_rf", "champion_version": champion, "shadow_version": shadow, "role": role,
            "state": state, "n": 412, "both_right": 150, "champion_only": 40, "shadow_only": 71, "both_wrong": 151,
            "champion_accuracy": 190 / 412, "shadow_accuracy": 221 / 412, "p_shadow_better": 0.0021,
            "p_champion_better": 0.9989, "champion_holdout": None, "shadow_holdout": None, "why": "waiting",
            "updated_at": updated}


EVENT = {"model_name": "flight_delay_rf", "decided_at": T - 3_600_000, "action": "refuse", "subject_version": "2",
         "role": "challenger", "champion_version": "default", "shadow_version": "2", "served_version": "default",
         "figures": {"n": 600, "champion_only": 90, "shadow_only": 40, "p_shadow_better": 0.9999,
                     "p_champion_better": 0.00001, "champion_accuracy": 0.52, "shadow_accuracy": 0.44,
                     "shadow_holdout": 0.55, "champion_holdout": 0.53},
         "why": "challenger v2 significantly worse than champion vdefault"}


def test_the_running_contest_and_the_events_are_shown(client, monkeypatch):  # noqa: F811
    from flightdelay.stores import promotion as store

    monkeypatch.setattr(outcomes.Reader, "session", lambda self: object())
    monkeypatch.setattr(store, "contests", lambda sess, name: [
        contest("default", "3"),                              # the served version's contest
        contest("default", "2", state="refuse", updated=T - 1),  # decided: not running
        contest("1", "3", updated=T - 2)])                     # beside another champion: stale
    monkeypatch.setattr(store, "events", lambda sess, name, limit: [EVENT])
    page = client.get("/model").get_data(as_text=True)
    running = page.split('id="promotion-running"')[1].split("</table>")[0]
    assert running.count("<tr>") == 2  # the header and one contest
    assert "challenger v3 against champion vdefault" in running and "<td>412</td>" in running
    assert "<td>46.12%</td>" in running and "<td>53.64%</td>" in running and "<td>0.0021</td>" in running
    events = page.split('id="promotion-events"')[1].split("</table>")[0]
    assert "<strong>refuse</strong>" in events and "served after: vdefault" in events
    assert "holdout 55.00% vs 53.00%" in events and "significantly worse" in events
    assert time_text(T - 3_600_000) in events


def time_text(ms):
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def test_no_contest_no_event_and_no_cassandra_are_said_plainly(client, monkeypatch):  # noqa: F811
    from flightdelay.stores import promotion as store

    monkeypatch.setattr(outcomes.Reader, "session", lambda self: object())
    monkeypatch.setattr(store, "contests", lambda sess, name: [])
    monkeypatch.setattr(store, "events", lambda sess, name, limit: [])
    page = client.get("/model").get_data(as_text=True)
    assert 'id="promotion-idle"' in page and 'id="promotion-no-events"' in page

    def down(self):
        raise RuntimeError("Cassandra is not answering (NoHostAvailable)")

    monkeypatch.setattr(outcomes.Reader, "session", down)
    page = client.get("/model")
    assert page.status_code == 200
    assert "Promotion records unavailable: Cassandra is not answering" in page.get_data(as_text=True)


def test_an_open_session_that_fails_names_cassandra(client, monkeypatch):  # noqa: F811
    from flightdelay.stores import promotion as store

    monkeypatch.setattr(outcomes.Reader, "session", lambda self: object())

    def failing(sess, name):
        raise TimeoutError("OperationTimedOut: errors={'127.0.0.1:9042': 'Client request timeout'}")

    monkeypatch.setattr(store, "contests", failing)
    page = client.get("/model").get_data(as_text=True)
    assert "Promotion records unavailable: Cassandra is not answering (TimeoutError)" in page
