"""Screenshots of the running pages for the README and docs/ (``make screenshots`` sets FD_SCREENSHOTS=1)."""
import os

from flightdelay.config import REPO_ROOT

SCREENSHOTS = os.environ.get("FD_SCREENSHOTS") == "1"


def shot(page, name, selector=None):
    """The whole page, or only the element ``selector`` names (a section of a long page)."""
    if SCREENSHOTS:
        path = str(REPO_ROOT / "img" / f"{name}.png")
        if selector:
            page.locator(selector).screenshot(path=path)
        else:
            page.screenshot(path=path, full_page=True)
