"""Real flights replayed through the platform's REST API (predictions, then their outcomes), then
seen in the browser: the model page's live accuracy beside the holdout, the history's outcome of
each prediction, the status page's outcome stream. ``make screenshots`` takes the pictures of
docs/using.md here, after a real replay of the holdout week (python -m replay) for fuller charts."""
from screens import shot

from flightdelay.reference import load_reference
from replay.flights import events, load
from replay.player import Replay

FLIGHTS = 30  # the first flights of 2013-11-04 (a Monday of the holdout): a few seconds through the API


def base(platform):
    return f"http://{platform.host}:{platform.webapp_port}"


def test_replayed_flights_are_scored_and_shown_on_the_pages(platform, page):
    flights = load(load_reference(), "2013-11-04", 1, limit=FLIGHTS)
    summary = Replay(platform, events(flights), speed=None, via="api", url=base(platform), settle=240,
                     say=print).play()
    assert summary["settled"] and summary["answered"] == FLIGHTS and summary["resolved"] == FLIGHTS, summary
    version = next(iter(summary["versions"]))

    page.goto(base(platform) + "/model")
    row = page.locator("#live-versions tr", has_text="(served)").first.inner_text()
    assert row.split()[0] == version, row
    live, holdout = row.split("\t")[2], row.split("\t")[1]
    assert 0 <= float(live) <= 1 and 0 < float(holdout) < 1, row
    page.wait_for_selector("#live-by-date[data-ready='1']", state="attached", timeout=30_000)
    assert int(page.get_attribute("#live-by-date", "data-points")) >= 1
    assert page.locator("#live-confusion tbody tr").count() == 4
    shot(page, "model-live", "#live")

    flight = next(f for f in flights if f.arr_delay is not None)
    page.goto(base(platform) + f"/history?Route={flight.origin}-{flight.dest}&FlightDate={flight.flight_date}"
              f"&Carrier={flight.carrier}")
    cells = page.locator("td.outcome").all_inner_texts()
    assert any(("right" in c or "wrong" in c) and "min" in c for c in cells), cells
    shot(page, "history-outcomes")

    page.goto(base(platform) + "/status")
    table = page.inner_text("#outcome-stream-table")
    assert "outcomes received" in table and "%" in page.inner_text("#match-rate")
    shot(page, "status-outcomes", "#outcome-stream-section")
