"""The pipeline's trigger form in the Airflow 3 UI, in a real browser (Debian's headless Chromium through
Selenium and chromedriver), against the SQLite + LocalExecutor services of tests/services/conftest.py.

A user logs in with the simple auth manager's form, opens the DAG, clicks Trigger, opens the form's "Version"
section (the params are grouped in sections: Version, Where, How) and fills the ``rebuild`` field of the form that the DAG's params generate: a negative number is never submitted
(Airflow 3.3's number field puts back the param's ``minimum``, 0, when the field is left - clicking Trigger leaves
it too, so -1 then starts a run with rebuild 0); 2 is accepted and the run starts with conf ``{"rebuild": 2}``.
The second test walks the whole form: the three sections, a target region and a pool picked in the multi-selects,
an invalid version (the form sends it, the REST API answers 400 naming the param and the format, e.g.
2026.1201.0, not a long regex; the form shows it, no run is made),
then a dry run (conf with the picked subsets; preflight and the plan only, zero writes in the stand-in's request log).
Screenshots of each step go to .artifacts/trigger-form/ (git-ignored).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from _services import DAG_ID, ROOT, require, wait_for_dag

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
    require("chromium", "chromium-driver")
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


def _new_runs(api, before: set[str]) -> list[dict]:
    """The runs not in ``before``, once there is one (or after WAIT seconds: none)."""
    deadline = time.monotonic() + WAIT
    new: list[dict] = []
    while time.monotonic() < deadline and not new:
        new = [r for r in _runs(api) if r["dag_run_id"] not in before]
        time.sleep(0.5)
    return new


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
    _section(browser, "Version")  # the params are grouped in sections (Param section=); rebuild is in "Version"
    field = _wait(browser, ec.visibility_of_element_located((By.NAME, "element_rebuild")))
    title = browser.find_element(By.XPATH, "//*[contains(text(), 'Trigger Dag')]")
    submit = browser.find_elements(By.XPATH, "//button[normalize-space()='Trigger']")[-1]  # the form's own
    _shot(browser, "03-trigger-form")

    # a negative rebuild number: the form holds the param's schema minimum (0) as soon as the field is left
    # (clicking Trigger leaves it too), so -1 can never be submitted
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
    new = _new_runs(api, runs_before)
    _shot(browser, "07-after-trigger")
    assert len(new) == 1, f"runs made by the form: {new}"
    assert new[0]["conf"].get("rebuild") == 2, new[0]["conf"]
    assert all((r["conf"] or {}).get("rebuild", 0) >= 0 for r in _runs(api))
    assert new[0]["run_type"] == "manual"


def _open_form(browser, stack):
    """Log in (if needed) on the DAG's page and open its trigger form; returns the form's own Trigger button."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    browser.get(f"{stack.api_url}/dags/{DAG_ID}")
    logins = browser.find_elements(By.NAME, "username")
    if not logins:
        try:
            logins = [_wait(browser, ec.presence_of_element_located((By.NAME, "username")), timeout=10)]
        except Exception:  # noqa: BLE001 - already logged in (the session cookie of the first test)
            logins = []
    if logins:
        logins[0].send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(stack.password)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser, ec.element_to_be_clickable(
        (By.XPATH, "//button[normalize-space()='Trigger' or @aria-label='Trigger Dag']"))).click()
    _section(browser, "Version")
    _wait(browser, ec.visibility_of_element_located((By.NAME, "element_rebuild")))
    return browser.find_elements(By.XPATH, "//button[normalize-space()='Trigger']")[-1]


def _section(browser, title: str):
    """Open the form's accordion section ``title`` (the Param's ``section``) if it is closed; return its trigger."""
    from selenium.webdriver.common.by import By

    trigger = _wait(browser, lambda d: next(iter(d.find_elements(
        By.XPATH, f"//button[.//*[normalize-space()='{title}'] or normalize-space()='{title}']")), None))
    if trigger.get_attribute("aria-expanded") == "false":
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", trigger)
        trigger.click()
    return trigger


def _pick(browser, param: str, value: str) -> None:
    """Choose ``value`` in the multi-select of ``param`` (a react-select: type, then Enter)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = _wait(browser, lambda d: next(iter(d.find_elements(
        By.CSS_SELECTOR, f"#element_{param} input:not([type=hidden])")), None))
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
    box.click()
    box.send_keys(value)
    time.sleep(0.5)
    box.send_keys(Keys.ENTER)


def test_trigger_form_sections_multiselects_bad_version_and_a_dry_run(sqlite_stack, services_standin, browser):
    """The whole form: its three sections, a target region and a pool picked in the multi-selects, an invalid
    version refused (the API answers 400, the form shows it, no run), then a dry run that writes nothing."""
    from selenium.webdriver.common.by import By

    api = sqlite_stack.client()
    wait_for_dag(api, DAG_ID)
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    for r in _runs(api):  # the run the first test started (max_active_runs=1 would queue the dry run behind it)
        if r["state"] not in ("success", "failed"):
            api.patch(f"/api/v2/dags/{DAG_ID}/dagRuns/{r['dag_run_id']}", {"state": "failed"})
    runs_before = {r["dag_run_id"] for r in _runs(api)}
    submit = _open_form(browser, sqlite_stack)
    # one section open at a time (the form's accordion): open each, read its fields
    sections = {"Version": ("Rebuild number", "Version (Major.Minor.Patch, e.g. 2026.1201.0)"),
                "Where": ("Target regions", "Logical pools to roll"),
                "How": ("Roll strategy", "Canary only", "Allow downgrade", "Dry run")}
    for i, (title, labels) in enumerate(sections.items()):
        _section(browser, title)
        time.sleep(1)  # the accordion's animation
        _shot(browser, f"08{'abc'[i]}-section-{title.lower()}")
        page = browser.find_element(By.TAG_NAME, "body").text
        for text in labels:
            assert text in page, (title, text, page[-1500:])

    _section(browser, "Where")
    time.sleep(1)
    _pick(browser, "target_regions", "westeurope")
    _pick(browser, "pools", "ubuntu2204")
    _shot(browser, "09-multiselects")

    _section(browser, "Version")
    time.sleep(1)
    version = browser.find_element(By.NAME, "element_version")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", version)
    _set_field(version, "2026.1201")
    _shot(browser, "10-invalid-version-typed")
    submit.click()
    refusal = _wait(browser, lambda d: next(iter(d.find_elements(
        By.XPATH, "//*[contains(text(), 'Invalid input for param version')]")), None), timeout=30)
    _shot(browser, "11-invalid-version-refused")
    # readable: the short shape and the format's example (the schema's title), not the 32-bit alternation regex
    text = refusal.text
    assert r"'2026.1201' does not match '^([0-9]+[.][0-9]+[.][0-9]+)?$'" in text, text
    assert "e.g. 2026.1201.0" in text and "2147483647" not in text, text
    time.sleep(2)
    assert {r["dag_run_id"] for r in _runs(api)} == runs_before

    _set_field(version, "")
    _section(browser, "How")
    time.sleep(1)
    switch = browser.find_element(By.NAME, "element_dry_run")  # the switch's hidden checkbox; a user clicks its label
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].closest('label').click()",
                           switch)
    _wait(browser, lambda d: switch.is_selected(), timeout=10)
    _shot(browser, "12-dry-run-on")
    mark = services_standin.control.requests()["last_id"]
    # the error toast of the refused trigger may still cover the button: click it the way the toast cannot stop
    submit = browser.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", submit)
    new = _new_runs(api, runs_before)
    _shot(browser, "13-dry-run-triggered")
    assert len(new) == 1, new
    conf = new[0]["conf"]
    assert conf["dry_run"] is True and conf["target_regions"] == ["westeurope"] and conf["pools"] == ["ubuntu2204"]
    assert not conf.get("version"), conf
    run_id = new[0]["dag_run_id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        run = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        if run["state"] in ("success", "failed"):
            break
        time.sleep(1)
    assert run["state"] == "success", run
    tis = {t["task_id"]: t["state"] for t in api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
                                                     limit=100)["task_instances"]}
    assert tis.pop("preflight") == "success" and tis.pop("dry_run_gate") == "success"
    assert tis.pop("run_summary") == "success" and set(tis.values()) == {"skipped"}, tis
    items = services_standin.control.requests(since=mark, items=True)["items"]
    assert [r for r in items if r["write"] and r["family"] in ("arm", "batch")] == []
    assert any(r["family"] in ("arm", "batch") for r in items)  # preflight did read
    browser.get(f"{sqlite_stack.api_url}/dags/{DAG_ID}/runs/{run_id}")
    time.sleep(3)
    _shot(browser, "14-dry-run-done")
