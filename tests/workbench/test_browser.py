"""The analyst's path in a real browser (Debian's chromium, headless, through chromedriver):
overview, the alert, an item behind it, a corrected frame, the label on the labels page, the export;
and on the Models page, a candidate trained, compared and promoted.

At each step the page must show a chart (an inline <svg>) and its items, and the browser console
must hold no error. A screenshot per step goes to FRAMEWATCH_SCREENSHOTS (default: a tmp dir).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from framewatch.processing.analyst.compare import artifact_model_id
from framewatch.processing.framing.train import read_manifest
from tests.serve.conftest import kafka_or_skip
from tests.workbench import lake as workbench_lake
from tests.workbench.conftest import Workbench
from tests.workbench.test_models import bench, label_passages  # noqa: F401 - bench is a fixture

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("Debian's chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402 - only once the browser is known to be there
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402

WAIT_S = 30


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the screenshots go."""
    folder = Path(os.environ.get("FRAMEWATCH_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless chromium at 1280x800 keeping its console log, downloading into tmp_path/downloads."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,800",
                "--no-first-run", "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    # the viewport itself is 1280x800 (a window of that size leaves less for the page)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(what: str, check: object, timeout: float = WAIT_S) -> object:
    """Poll *check* until it returns something truthy (or fail naming *what*)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()  # type: ignore[operator]
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def step(driver: WebDriver, shots: Path, name: str, items_css: str) -> None:
    """The page shows a chart and its items, names the role, its console is clean; take a screenshot."""
    wait_for(f"{name}: loaded", lambda: driver.execute_script("return document.readyState") == "complete")
    assert driver.find_elements(By.CSS_SELECTOR, "figure.chart svg"), f"{name}: no chart"
    assert driver.find_elements(By.CSS_SELECTOR, items_css), f"{name}: no {items_css}"
    assert driver.find_element(By.CSS_SELECTOR, "[data-role]").text == "analyst", f"{name}: role not shown"
    errors = [e for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")]
    assert errors == [], f"{name}: console errors {errors}"
    assert driver.save_screenshot(str(shots / f"{name}.png")), f"{name}: no screenshot"
    assert struct.unpack(">II", (shots / f"{name}.png").read_bytes()[16:24]) == (1280, 800)


def test_analyst_goes_from_the_alert_to_a_corrected_label_and_an_export(
        workbench: Workbench, browser: WebDriver, shots: Path, tmp_path: Path) -> None:
    alert_key = workbench_lake.alert_key(workbench.lake)
    browser.get(workbench.root + "/")
    token = browser.find_element(By.ID, "token")  # / redirects to the overview, which asks for a login
    token.send_keys(workbench.tokens["analyst"])
    token.submit()
    wait_for("the overview", lambda: browser.current_url.rstrip("/").endswith("/ui"))
    step(browser, shots, "1-overview", "li.item")

    link = next(a for a in browser.find_elements(By.CSS_SELECTOR, "a.alert-link")
                if a.get_attribute("href").endswith(alert_key.replace(":", "%3A")))
    link.click()
    wait_for("the alert page", lambda: "/ui/alerts/" in browser.current_url)
    step(browser, shots, "2-alert", "li.item")
    behind = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "li.item a.item-link")]
    assert behind and all(t.startswith("Harbour surveillance") for t in behind), behind
    assert "+1 copy" in browser.find_element(By.CSS_SELECTOR, "ol.items").text  # the reprint is folded

    browser.find_elements(By.CSS_SELECTOR, "li.item a.item-link")[0].click()
    wait_for("the item page", lambda: "/ui/items/" in browser.current_url)
    step(browser, shots, "3-item", "section.segment")
    item_key = browser.current_url.split("/ui/items/")[1].split("?")[0].replace("%3A", ":")
    assert "Framed as surveillance" in browser.find_element(By.ID, "segment-0").text

    Select(browser.find_element(By.ID, "frame-0")).select_by_value("trade")
    browser.find_element(By.CSS_SELECTOR, "#segment-0 form button[type=submit]").click()
    wait_for("the saved label", lambda: "saved=0" in browser.current_url)
    assert "Label saved for segment 0 (trade)" in browser.find_element(By.CSS_SELECTOR, "p.ok").text
    step(browser, shots, "4-corrected", "section.segment")

    browser.find_element(By.LINK_TEXT, "Labels").click()
    wait_for("the labels page", lambda: browser.current_url.endswith("/ui/labels"))
    step(browser, shots, "5-labels", "tr.label-row")
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "tr.label-row")]
    assert any(item_key in r and "trade" in r and "ana" in r for r in rows), rows

    browser.get(f"{workbench.root}/ui/items?watch={workbench_lake.ALERT_WATCH}&frame={workbench_lake.ALERT_FRAME}")
    step(browser, shots, "6-export", "li.item")
    total = int(browser.find_element(By.CSS_SELECTOR, "h1 .muted").text.strip("()"))
    browser.find_element(By.LINK_TEXT, "CSV").click()
    downloads = tmp_path / "downloads"
    done = wait_for("the CSV download", lambda: [p for p in downloads.glob("*.csv")] if downloads.exists() else [])
    rows_ = list(csv.DictReader(io.StringIO(done[0].read_text(encoding="utf-8"))))  # type: ignore[index]
    assert len(rows_) == total and {r["frame"] for r in rows_} == {workbench_lake.ALERT_FRAME}
    assert [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"] == []


def test_analyst_trains_a_candidate_watches_it_train_and_promotes_it(
        bench: Workbench, browser: WebDriver, shots: Path) -> None:  # noqa: F811 - the fixture imported above
    kafka_or_skip()
    label_passages(bench)
    browser.get(bench.root + "/ui/models")
    token = browser.find_element(By.ID, "token")
    token.send_keys(bench.tokens["analyst"])
    token.submit()
    wait_for("the models page", lambda: "/ui/models" in browser.current_url)
    browser.find_element(By.CSS_SELECTOR, "form[action='/ui/models/train'] button").click()
    # the page refreshes itself (a meta refresh, no script) until the comparison is there
    found = wait_for("the comparison", lambda: browser.find_elements(By.CSS_SELECTOR, "code.candidate-model"), 60)
    candidate = found[0].text  # type: ignore[index]
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.frame-row")) == 3
    assert [e for e in browser.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")] == []
    assert browser.save_screenshot(str(shots / "7-models.png"))
    browser.find_element(By.CSS_SELECTOR, "form[action='/ui/models/promote'] button").click()
    wait_for("the promotion", lambda: "Last promoted" in browser.page_source)  # the old page's elements go stale
    assert artifact_model_id(read_manifest(Path(str(bench.ctx.settings.serve_artifact_path)))) == candidate
