"""The streaming job's monitoring surface: the Spark UI's Structured Streaming pages."""
import re
import time

from screens import SCREENSHOTS, shot

from flightdelay import status as job_status
from flightdelay.reference import load_reference
from harness.traffic import produce_requests, sample_requests
from harness.wait import wait_for


def predict_batch(s) -> int | None:
    """The predict query's last completed batch in the job's status file (None before its first)."""
    status = job_status.read(s)
    return status.batch("predict") if status else None


def send_traffic_for_batches(s, batches: int, rate: int = 50, timeout: float = 300.0) -> None:
    """For the screenshot: requests at ``rate``/s until the predict query has completed
    ``batches`` more real-time batches (make screenshots shortens FD_REALTIME_INTERVAL), so
    its charts have points to draw."""
    reference = load_reference()
    deadline = time.monotonic() + timeout
    until = (predict_batch(s) or 0) + batches
    seed = 0
    while time.monotonic() < deadline:
        if (predict_batch(s) or 0) >= until:
            return
        seed += 1
        produce_requests(s, s.request_topic, sample_requests(reference, rate, seed=seed))
        time.sleep(1)
    raise AssertionError(f"the predict query did not complete {batches} batches in {timeout:.0f} s")


def test_spark_ui_shows_the_running_predict_query_and_its_statistics(platform, page):
    ui = f"http://{platform.host}:{platform.spark_ui_port}"
    if SCREENSHOTS:
        send_traffic_for_batches(platform, batches=5)
    page.goto(ui + "/StreamingQuery/")
    # A model swap restarts the query: its earlier runs are listed as completed, the live one RUNNING.
    row = page.locator("tr", has=page.locator("td", has_text=re.compile(r"^predict$"))).filter(has_text="RUNNING")
    wait_for(lambda: row.count() == 1, 60, "the running predict query in the Spark UI's Structured Streaming tab")
    row.locator("a[href*='statistics']").click()
    page.wait_for_selector("text=Streaming Query Statistics")
    # Spark fills the page with the query's first progress report, at the end of its first
    # real-time batch (FD_REALTIME_INTERVAL, 15 min); before that it shows the title only.
    if predict_batch(platform) is not None:
        text = page.inner_text("body")
        assert "Name: predict" in text
        for chart in ("Input Rate", "Process Rate", "Batch Duration"):
            assert chart in text, chart
    shot(page, "spark-streaming-predict")
