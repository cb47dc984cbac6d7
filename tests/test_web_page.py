"""The operators' page in a real browser (Debian's chromium through Selenium) against the real
daemon, virtual printers, pcscd and upstream: a jam injected with the simulator's control channel
shows on the page within 2 s with its Indonesian remedy; pausing a printer from the page (after
signing in with the PIN) stops that printer feeding, as its own hopper count shows, while the
other prints on. A screenshot is kept in build/test-artifacts/. The API refuses actions without
the PIN and without the session's CSRF token.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from agent.ops.web_auth import hash_pin
from drivers.faults import Fault
from tests.station_rig import StationRig, wait_until

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"
PIN = "2468"
JOBS = 16

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver (scripts/install-system-packages.sh)")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1500"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def text_of(browser, by: str, value: str) -> str:
    """The element's text; "" while the live view is replacing it (the next look finds the new one)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return browser.find_element(by, value).text
    except (StaleElementReferenceException, NoSuchElementException):
        return ""


def click(browser, by: str, value: str) -> bool:
    """Click the element; False (to be tried again by a wait) while the live view replaces it."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        browser.find_element(by, value).click()
        return True
    except (StaleElementReferenceException, NoSuchElementException):
        return False


def page_text(browser) -> str:
    return text_of(browser, "tag name", "body")


def printer_section(browser, name: str) -> str:
    return text_of(browser, "id", f"printer-{name}")


def test_a_jam_shows_within_two_seconds_and_pause_from_the_page_stops_that_printer(pcscd, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with StationRig(tmp_path, jobs=JOBS, printers=2, speed=10, prefetch=JOBS) as rig:
        rig.start()
        rig.write_config(web={"operator_pin_hash": hash_pin(PIN)}, station={"language": "id"})  # the default language
        rig.start_agent()
        url = rig.web_url()
        browser.get(url)
        assert "Stasiun cetak KTP-el" in page_text(browser), "Bahasa Indonesia by default"
        WebDriverWait(browser, 60).until(lambda b: "mencetak" in printer_section(b, "p1"))

        # A jam while p1 prints: on the page, in Indonesian, with the remedy.
        jam_message, jam_remedy = Fault.JAM.message("id"), Fault.JAM.remedy("id")
        rig.ctl("p1", action="jam")
        injected = time.monotonic()
        WebDriverWait(browser, 2.0, poll_frequency=0.05).until(lambda b: jam_message in printer_section(b, "p1"))
        shown_after = time.monotonic() - injected
        assert jam_remedy in printer_section(browser, "p1")
        assert "berhenti" in printer_section(browser, "p1")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "operator-page-jam.png"))
        rig.ctl("p1", action="clear")
        WebDriverWait(browser, 60).until(lambda b: jam_message not in printer_section(b, "p1"))

        # Read-only without the PIN: no buttons, and the API refuses.
        assert not browser.find_elements(By.CSS_SELECTOR, "button[data-action]")
        assert httpx.post(url + "api/printers/p1/pause", timeout=10).status_code == 403

        browser.find_element(By.ID, "pin").send_keys(PIN)  # the login is not part of the live view
        WebDriverWait(browser, 10).until(lambda b: click(b, By.ID, "sign-in"))
        WebDriverWait(browser, 10).until(
            lambda b: b.find_elements(By.CSS_SELECTOR, 'button[data-action="api/printers/p1/pause"]'))
        WebDriverWait(browser, 10).until(lambda b: click(b, By.CSS_SELECTOR, 'button[data-action="api/printers/p1/pause"]'))
        WebDriverWait(browser, 120).until(lambda b: "Aman dibuka" in printer_section(b, "p1"))
        # The witness: p1's own hopper stops going down while p2 prints on.
        p1_left = rig.printer_state("p1")["hopper_remaining"]
        p2_out = rig.printer_state("p2")["output_count"]
        wait_until(lambda: rig.printer_state("p2")["output_count"] >= p2_out + 2, 120, "p2 printing on")
        assert rig.printer_state("p1")["hopper_remaining"] == p1_left, "a paused printer fed a blank"
        assert rig.printer_state("p1")["card"] is None, "safe to open: no card inside"
        browser.save_screenshot(str(ARTIFACTS / "operator-page-paused.png"))

        # English on the switch; a session without its CSRF token cannot act.
        WebDriverWait(browser, 10).until(lambda b: click(b, By.ID, "language"))
        WebDriverWait(browser, 10).until(lambda b: "e-KTP print station" in page_text(b))
        cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
        assert httpx.post(url + "api/printers/p1/resume", cookies=cookies, timeout=10).status_code == 403
        status = httpx.get(url + "api/status", timeout=10).json()
        assert [p["paused"] for p in status["printers"]] == [True, False]
    print(f"jam on the page {shown_after:.2f} s after it was injected")
