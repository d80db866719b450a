"""A person predicts a flight in the browser, sees the live answer, a field error, the history."""
import os
import signal

from screens import shot

from harness.wait import wait_for


def base(platform):
    return f"http://{platform.host}:{platform.webapp_port}"


def fill_flight(page, *, dep_delay="45", flight_num="1545"):
    page.select_option("select[name=Carrier]", "UA")
    page.select_option("select[name=Origin]", "EWR")
    page.select_option("select[name=Dest]", "IAH")
    page.fill("input[name=FlightDate]", "2013-12-24")
    page.fill("input[name=CRSDepTime]", "0529")
    page.fill("input[name=CRSArrTime]", "0830")
    page.fill("input[name=DepDelay]", dep_delay)
    page.fill("input[name=FlightNum]", flight_num)


def test_predict_a_flight_and_see_the_live_answer(platform, page):
    page.goto(base(platform) + "/")
    fill_flight(page)
    shot(page, "predict-form")
    page.click("button[type=submit]")
    page.wait_for_selector("#answer:not([hidden])", timeout=60_000)
    label = page.inner_text("#answer-label")
    assert any(word in label for word in ("early", "late"))
    assert page.locator("#answer-probs tr").count() == 4
    uuid = page.inner_text("#answer-uuid")
    assert len(uuid) == 36
    assert page.inner_text("#answer-model").startswith("flight_delay_rf ")
    shot(page, "predict-result")

    # ... and finds it in the history (MongoDB), newest first. Filtered down to this flight: on a
    # platform in use, other EWR-IAH requests made meanwhile would push it off the first page.
    page.goto(base(platform) + "/history?Route=EWR-IAH&Carrier=UA&FlightDate=2013-12-24")

    def listed():  # the archive query stores it within seconds; reload until it does
        page.reload()
        page.wait_for_selector("table.data")
        return uuid[:8] in page.inner_text("table.data")

    wait_for(listed, 60, f"request {uuid} on the history page")
    assert "an estimate" in page.inner_text("#history-count")
    shot(page, "history")


def test_a_bad_field_gets_a_message_next_to_it(platform, page):
    page.goto(base(platform) + "/")
    fill_flight(page, flight_num="abc")
    page.click("button[type=submit]")
    page.wait_for_function("document.querySelector('.field-error[data-for=FlightNum]').textContent.length > 0")
    assert "whole number" in page.inner_text(".field-error[data-for=FlightNum]")
    assert page.get_attribute("input[name=FlightNum]", "aria-invalid") == "true"
    assert page.is_hidden("#answer")
    shot(page, "field-error")


def test_destinations_follow_the_origin(platform, page):
    page.goto(base(platform) + "/")
    page.select_option("select[name=Origin]", "LGA")
    enabled = page.eval_on_selector_all("select[name=Dest] option:not([disabled])", "os => os.map(o => o.value)")
    assert "ATL" in enabled and "HNL" not in enabled  # LGA had no Honolulu flights in 2013


def test_status_and_model_pages(platform, page):
    page.goto(base(platform) + "/status")
    page.wait_for_selector("table.data")
    for name in ("Kafka", "MongoDB", "Cassandra", "HDFS", "MLflow", "Spark streaming job", "NiFi", "Airflow"):
        row = page.locator("tr", has_text=name).first.inner_text()
        assert "up" in row.split(), row
    assert "NiFi 1.18.0" in page.locator("tr", has_text="NiFi").first.inner_text()
    for query in ("predict", "archive-mongo", "archive-cassandra", "archive-hdfs"):
        row = page.locator("#queries tr", has_text=query).first.inner_text()
        assert "running" in row.split(), row
    shot(page, "status")
    page.goto(base(platform) + "/model")
    model = page.inner_text("main")
    assert "holdout_accuracy" in model
    assert "MLflow registry alias" in model and "Trained by MLflow run" in model  # a real registry entry
    shot(page, "model")


def test_nifi_canvas_shows_the_running_flow_and_the_archive_page_its_files(platform, page):
    page.goto(f"http://{platform.host}:{platform.nifi_port}/nifi/")
    page.wait_for_function("document.querySelectorAll('g.processor').length >= 4", timeout=120_000)
    names = " | ".join(page.eval_on_selector_all("g.processor text.processor-name", "els => els.map(e => e.textContent)"))
    for name in ("Consume predictions", "Cut into 10-second files", "Name the file", "Write the archive file"):
        assert name in names, names
    # The status bar counts running components (NiFi refreshes it every 5 s, nifi.ui.autorefresh.interval).
    page.wait_for_function("document.querySelector('#controller-running-count').textContent.trim() === '4'",
                           timeout=30_000)
    for palette in ("#navigation-control", "#operation-control"):  # fold them: they cover the flow
        page.click(f"{palette} .graph-control-header-action")
    shot(page, "nifi-canvas")

    # The prediction of the first test reached NiFi too: the archive page lists its files.
    page.goto(base(platform) + "/archive")
    for _ in range(60):
        if page.locator("#text-files tbody tr td code").count():
            break
        page.wait_for_timeout(1000)
        page.reload()
    first = page.locator("#text-files tbody tr").first.inner_text()
    assert first.startswith("predictions-") and ".txt" in first, first
    # The parquet archive's chart: Chart.js, served by the web app itself, ran under the CSP.
    page.wait_for_selector("#archive-chart[data-ready='1']", state="attached", timeout=30_000)
    shot(page, "archive")


def hold_acks_until_the_prediction(page):
    """Route the page's Socket.IO websocket through the test and force the order the page must
    survive: the "prediction" event before the ack naming its UUID (it happens when the answer
    is pushed to the room, joined before producing, before the ack is sent). Returns the frames
    the page received, in order."""
    seen, held = [], []

    def route(ws):
        server = ws.connect_to_server()
        ws.on_message(server.send)

        def from_server(message):
            if isinstance(message, str) and message.startswith("43") and not held:
                held.append(message)  # an ack: kept back until the prediction has gone out
                return
            seen.append(message)
            ws.send(message)
            if isinstance(message, str) and message.startswith('42["prediction"') and held:
                seen.append(held[0])
                ws.send(held.pop())

        server.on_message(from_server)

    page.route_web_socket("**/socket.io/**", route)
    return seen


def test_the_page_shows_its_answer_when_it_arrives_before_the_ack(platform, page):
    seen = hold_acks_until_the_prediction(page)
    page.goto(base(platform) + "/")
    fill_flight(page, dep_delay="12")
    page.click("button[type=submit]")
    page.wait_for_selector("#answer:not([hidden])", timeout=15_000)  # the page's own timeout is 10 s
    order = [m[:2] for m in seen if isinstance(m, str) and m[:2] in ("42", "43")]
    assert order[-2:] == ["42", "43"], seen  # the order was forced: result, then ack
    assert page.is_hidden("#timeout")
    assert len(page.inner_text("#answer-uuid")) == 36


def test_an_open_page_gets_its_pending_answer_across_a_web_app_restart(platform, page):
    """The pushed prediction is lost (dropped on its way, as when the web app goes down at that
    moment), then the web app restarts: the page pauses its wait, reconnects, asks again and
    shows the stored answer. The page's timeout is 8 s here and the web app is down longer: the
    old page said "No answer yet" (its timer ran on, and it asked once, before the answer was
    stored)."""
    from harness.own_webapp import own_webapp
    from harness.ports import free_port

    port, settings = free_port(), {"FD_WEBAPP_RESULT_TIMEOUT_S": "8"}
    dropped = []

    def route(ws):
        server = ws.connect_to_server()
        ws.on_message(server.send)

        def from_server(message):
            if isinstance(message, str) and message.startswith('42["prediction"') and not dropped:
                dropped.append(message)
                return
            ws.send(message)

        server.on_message(from_server)

    page.route_web_socket("**/socket.io/**", route)
    with own_webapp(platform, port=port, env=settings) as (url, pid):
        page.goto(url + "/")
        fill_flight(page, dep_delay="33")
        page.click("button[type=submit]")
        for _ in range(300):  # Playwright runs the route's handlers only while the test calls it
            if dropped:
                break
            page.wait_for_timeout(100)
        assert dropped, "the prediction was not pushed to the page within 30 s"
        # Stopped here, while Playwright relays the closing connection to the page: own_webapp's
        # wait for the process to end relays nothing, and the page's timer would run meanwhile.
        os.killpg(pid, signal.SIGTERM)
        # A locator, not wait_for_function: polling a JavaScript string is an eval, which the
        # page's Content-Security-Policy refuses.
        page.locator("#progress", has_text="connection to the server was lost").wait_for(state="attached",
                                                                                          timeout=10_000)
    page.wait_for_timeout(9_000)  # longer than the page's timeout
    assert page.is_hidden("#timeout")
    with own_webapp(platform, port=port, env=settings):
        page.wait_for_selector("#answer:not([hidden])", timeout=30_000)
    assert page.inner_text("#answer-uuid") in dropped[0]
