"""Headless Chromium (Debian's ``chromium`` package) driven by Playwright's Python API.

No browser is downloaded: the tests use ``/usr/bin/chromium`` (or ``BRIGHTSCAN_CHROMIUM``) and
skip with a reason when it or Playwright is absent.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAPTOP, PHONE = 1280, 390


def chromium_path() -> str | None:
    path = os.environ.get("BRIGHTSCAN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if Path(path).is_file() else None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (extra: test)")
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is absent (apt-get install chromium); browser tests need /usr/bin/chromium")
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=path, args=ARGS)
        yield instance
        instance.close()


class Page:
    """A page opened at one width, recording console errors and failed requests."""

    def __init__(self, browser: Any, url: str, width: int) -> None:
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)
        self.page.wait_for_load_state("load")

    def overflow(self) -> int:
        """Pixels the whole page scrolls sideways (0 when nothing sticks out)."""
        return int(self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))

    def images(self, selector: str = "img") -> list[dict[str, int]]:
        """Natural and rendered sizes of the images (a broken image has naturalWidth 0)."""
        return self.page.eval_on_selector_all(
            selector, "els => els.map(e => ({natural: e.naturalWidth, width: e.getBoundingClientRect().width,"
                      " alt: e.alt}))")

    def rows(self, selector: str) -> list[str]:
        return self.page.eval_on_selector_all(f"{selector} tbody tr", "rs => rs.map(r => r.innerText)")

    def close(self) -> None:
        self.page.close()


def check_layout(browser: Any, url: str, shot: Path | None = None) -> dict[int, Page]:
    """Open ``url`` at laptop and phone widths; assert no console errors, no page-wide sideways
    scroll, every image loaded and drawn; keep the pages open for further checks."""
    pages = {}
    for width in (LAPTOP, PHONE):
        page = Page(browser, url, width)
        assert page.errors == [], page.errors
        assert page.overflow() <= 0, f"page scrolls sideways by {page.overflow()} px at {width} px"
        for image in page.images():
            assert image["natural"] > 0 and image["width"] > 20, image
            assert image["width"] <= width, image
        if shot is not None:
            page.page.screenshot(path=str(shot.with_name(f"{shot.stem}-{width}.png")), full_page=False)
        pages[width] = page
    return pages
