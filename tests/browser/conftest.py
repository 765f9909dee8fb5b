"""Browser tests: Debian's Chromium, headless, driven by selenium (WebDriver), against a real ComfyUI
server on 127.0.0.1 with the pack installed. Skipped, with the reason printed, only when there is no
ComfyUI host, no Chromium/chromedriver, or no selenium (`.ci/run` installs all three)."""
from __future__ import annotations

import importlib.util
import os
import shutil

import pytest
import requests

from fixtures.host import host_path, host_present

HOST = host_path()
HOST_PRESENT = host_present(HOST)
NO_HOST_REASON = f"no ComfyUI host at {HOST} (set COMFYUI_PATH to a ComfyUI checkout)"

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SKIPPED: list[str] = []


def _skip(reason: str):
    SKIPPED.append(reason)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter):
    for reason in dict.fromkeys(SKIPPED):
        terminalreporter.write_line(f"SKIPPED browser tests: {reason}", yellow=True)


def find_browser() -> tuple[str | None, str | None]:
    """(chromium binary, chromedriver) from CHROME_BIN / CHROMEDRIVER or the PATH."""
    browser = os.environ.get("CHROME_BIN") or next(filter(None, map(shutil.which, CHROMIUM_CANDIDATES)), None)
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    usable = lambda path: path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None  # noqa: E731
    return usable(browser), usable(driver)


@pytest.fixture(scope="session")
def chromium():
    """(Chromium, chromedriver) paths, selenium importable; else the browser tests are skipped, saying why."""
    if importlib.util.find_spec("selenium") is None:
        _skip("selenium is not installed (pip install -r requirements-test.txt)")
    binary, driver_path = find_browser()
    if not binary or not driver_path:
        _skip("Chromium or chromedriver not found (Debian: apt-get install chromium chromium-driver; "
              "or set CHROME_BIN and CHROMEDRIVER)")
    return binary, driver_path


@pytest.fixture(scope="session")
def comfy(chromium, tmp_path_factory):
    """A real ComfyUI server (--cpu, 127.0.0.1) with the pack (and its web extension) installed; no models."""
    if not HOST_PRESENT:
        _skip(NO_HOST_REASON)
    from fixtures.comfy_server import start_server
    root = tmp_path_factory.mktemp("comfyui_browser")
    srv = start_server(HOST, root, {})
    try:
        # A first visit opens the template browser over the graph; a returning user's settings do not.
        requests.post(f"{srv.url}/settings", json={"Comfy.TutorialCompleted": True}, timeout=30).raise_for_status()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def browser(chromium, comfy):
    """Headless Chromium through chromedriver, showing ComfyUI's editor."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--force-device-scale-factor=1", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
