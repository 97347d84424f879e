"""Every generated HTML page opens in headless Chromium: images load, no console errors, not blank
(a full-page screenshot with ink on it), and a report page reads as words and rounded figures.

The four reports come from `shivx-analytics report`, the notebook page from `notebook run`, both on
a small seeded demo (as_of 2025-10-28), opened from file:// URLs with every network request
recorded. Needs Debian's `chromium` and the `playwright` package (never `playwright install`):
without them the test is skipped, except in CI (CI=true), where it fails.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _databases import IN_CI

import shivx_analytics as sx

pytestmark = pytest.mark.slow  # the whole file: docs/development.md, Testing

AS_OF = "2025-10-28"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
REPORT_PAGES = ["pnl.html", "execution.html", "api_usage.html", "security.html"]
PAGES = [*REPORT_PAGES, "02_pnl.html"]


def _missing_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed"
    if CHROMIUM is None:
        return "chromium is not on PATH (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _missing_browser()
    if missing and IN_CI:
        pytest.fail(f"CI=true but {missing}: the browser test must run in CI")
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    """The four HTML reports and the executed 02_pnl notebook, generated in parallel by the CLI."""
    folder = tmp_path_factory.mktemp("pages")
    url = f"sqlite:///{folder / 'demo.db'}"
    sx.migrate(url)
    sx.generate_demo_data(url, seed=0, scale="small", as_of=AS_OF)
    environment = os.environ | {"SHIVX_DATABASE_URL": url}
    cli = [sys.executable, "-m", "shivx_analytics.cli"]
    jobs = [
        subprocess.Popen([*cli, "report", "all", "--as-of", AS_OF, "--format", "html", "--out", str(folder)],
                         env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        subprocess.Popen([*cli, "notebook", "run", str(NOTEBOOKS / "02_pnl.ipynb"), "-p", f"as_of={AS_OF}",
                          "--out", str(folder / "02_pnl.html")],
                         env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    ]
    for job in jobs:
        _stdout, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, f"{' '.join(job.args[2:5])} exited {job.returncode}: {stderr}"
    return folder


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_in_chromium_with_every_image_loaded_and_no_errors(name, pages, browser, tmp_path):
    path = pages / name
    assert path.is_file(), f"{name} was not generated"
    problems: list[str] = []
    page = browser.new_page()
    page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"failed request: {request.url[:120]}"))
    page.on("request", lambda request: request.url.startswith(("file:", "data:"))
            or problems.append(f"network request: {request.url[:120]}"))
    try:
        page.goto(path.as_uri(), wait_until="load")
        images = page.evaluate("Array.from(document.images, i => ({src: i.src.slice(0, 40), complete: i.complete,"
                               " width: i.naturalWidth}))")
        text = page.inner_text("body")
        screenshot = tmp_path / f"{path.stem}.png"
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()

    assert problems == []
    assert images, f"{name} shows no image (figures missing)"
    assert [i for i in images if not (i["complete"] and i["width"] > 0)] == []
    assert len(text.strip()) > 500, f"{name} looks blank: {text[:200]!r}"
    colours, inked = _ink(screenshot)
    assert colours > 1, f"{name}: the screenshot is one flat colour"
    assert inked > 0.02, f"{name}: only {inked:.1%} of the screenshot is not background"
    if name in REPORT_PAGES:  # what a reader sees: words and rounded figures (exact ones collapsed)
        assert "Headline figures" in text and "Exact values" in text
        assert not re.search(r"\b(None|NaN|nan|NaT)\b|<NA>|0E-8", text), name
        assert not re.search(r"\$-?[\d,]+\.\d{3,}", text), name
    else:  # the notebook shows the headline figures once (the report view), then figures and tables
        assert text.count("Realized P&L") >= 1 and "dtype: object" not in text


def _ink(png: Path) -> tuple[int, float]:
    """The screenshot's number of colours and the share of pixels that differ from its
    background (the colour of the top-left pixel)."""
    from PIL import Image, ImageChops  # pillow comes with matplotlib

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24)
        background = Image.new("RGB", rgb.size, rgb.getpixel((0, 0)))
        differs = ImageChops.difference(rgb, background).convert("L").point(lambda v: 255 if v > 16 else 0)
        inked = differs.histogram()[255] / (rgb.size[0] * rgb.size[1])
    return len(colours), inked
