"""Screenshots of the running pages for the README and docs/ (``make screenshots`` sets FD_SCREENSHOTS=1)."""
import os

from flightdelay.config import REPO_ROOT

SCREENSHOTS = os.environ.get("FD_SCREENSHOTS") == "1"


def shot(page, name):
    if SCREENSHOTS:
        page.screenshot(path=str(REPO_ROOT / "img" / f"{name}.png"), full_page=True)
