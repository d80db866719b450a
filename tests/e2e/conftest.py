"""End-to-end: the whole stack (servers, streaming job, web app) through a real headless
Chromium (Debian's package, driven by Playwright; no browser download)."""
import os
import shutil
import tempfile

import pytest

CHROMIUM = os.environ.get("FD_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium tries to reach Google's hosts at start.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def platform(stack):
    return stack.require("kafka", "nifi", "mongo", "mlflow", "hdfs", "cassandra", "streaming", "webapp",
                         "airflow", "airflow-scheduler", "airflow-dag-processor")


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (make test does)")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="fd-chromium-")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                        args=CHROMIUM_ARGS, viewport={"width": 1200, "height": 900})
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser):
    p = browser.new_page()
    yield p
    p.close()
