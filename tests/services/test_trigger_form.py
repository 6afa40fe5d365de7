"""The pipeline's trigger form in the Airflow 3 UI, in a real browser (Debian's headless Chromium through
Selenium and chromedriver), against the SQLite + LocalExecutor services of tests/services/conftest.py.

A user logs in with the simple auth manager's form, opens the DAG, clicks Trigger, and fills the
``rebuild`` field of the form that the DAG's params generate: a negative number is refused by the form
(Airflow 3.3's number field puts back the param's ``minimum``, 0, when the field is left, so -1 is never
submitted, and no run is made); 2 is accepted and the run starts with conf ``{"rebuild": 2}``.
Screenshots of each step go to .artifacts/trigger-form/ (git-ignored).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from _services import DAG_ID, ROOT, wait_for_dag

pytestmark = pytest.mark.services

ARTIFACTS = ROOT / ".artifacts" / "trigger-form"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# flags that work in a container as root with no network beyond loopback
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")
WAIT = 60  # seconds for any page element (the UI is a single-page app; a loaded machine is slow)


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")),
                              options=opts)
    driver.set_page_load_timeout(WAIT)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = WAIT):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(condition)


def _shot(driver, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _set_field(field, text: str) -> None:
    """Replace a controlled React input's value the way a user does: select all, type."""
    from selenium.webdriver.common.keys import Keys

    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(text)


def _runs(api) -> list[dict]:
    return api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", limit=100)["dag_runs"]


def test_trigger_form_refuses_a_negative_rebuild_and_starts_a_run_with_the_filled_conf(sqlite_stack, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    api = sqlite_stack.client()
    wait_for_dag(api, DAG_ID)
    runs_before = {r["dag_run_id"] for r in _runs(api)}

    # log in through the simple auth manager's form, landing on the DAG's page
    browser.get(f"{sqlite_stack.api_url}/dags/{DAG_ID}")
    _wait(browser, ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(sqlite_stack.password)
    _shot(browser, "01-login")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    trigger = _wait(browser, ec.element_to_be_clickable(
        (By.XPATH, "//button[normalize-space()='Trigger' or @aria-label='Trigger Dag']")))
    _shot(browser, "02-dag-page")

    # the trigger form: the DAG's params as fields (a number input named element_<param>)
    trigger.click()
    field = _wait(browser, ec.visibility_of_element_located((By.NAME, "element_rebuild")))
    title = browser.find_element(By.XPATH, "//*[contains(text(), 'Trigger Dag')]")
    submit = browser.find_elements(By.XPATH, "//button[normalize-space()='Trigger']")[-1]  # the form's own
    _shot(browser, "03-trigger-form")

    # a negative rebuild number: the form holds the param's schema minimum (0) as soon as the field is left,
    # so -1 can never be submitted
    _set_field(field, "-1")
    _shot(browser, "04-negative-rebuild-typed")
    title.click()  # leave the field, as a user moving on does
    _wait(browser, lambda d: field.get_attribute("value") != "-1", timeout=10)
    _shot(browser, "05-negative-rebuild-refused")
    assert field.get_attribute("value") == "0", field.get_attribute("value")
    assert field.get_attribute("aria-valuemin") == "0"
    assert {r["dag_run_id"] for r in _runs(api)} == runs_before

    # a valid value: the run starts with it as conf
    _set_field(field, "2")
    _wait(browser, lambda d: submit.is_enabled())
    _shot(browser, "06-rebuild-2")
    submit.click()
    deadline = time.monotonic() + WAIT
    new = []
    while time.monotonic() < deadline and not new:
        new = [r for r in _runs(api) if r["dag_run_id"] not in runs_before]
        time.sleep(0.5)
    _shot(browser, "07-after-trigger")
    assert len(new) == 1, f"runs made by the form: {new}"
    assert new[0]["conf"].get("rebuild") == 2, new[0]["conf"]
    assert all((r["conf"] or {}).get("rebuild", 0) >= 0 for r in _runs(api))
    assert new[0]["run_type"] == "manual"
