"""The HTML report in a real browser: Debian's headless chromium through chromedriver.

The browser is required: without /usr/bin/chromium and /usr/bin/chromedriver these tests
fail (CI installs them: .ci/run), they do not skip.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from odp_async.explore.target import Execution, Target
from odp_async.report import write_html

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(binary), (
            f"{binary} is missing: apt-get install -y chromium chromium-driver (see README)"
        )
    profile = tempfile.mkdtemp(prefix="odp-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _key(driver: Any, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def _text(driver: Any, element_id: str) -> str:
    return str(driver.find_element("id", element_id).text)


def test_the_race_report_steps_and_explains(
    browser: Any, tmp_path: Path, race_execution: Execution
) -> None:
    from selenium.webdriver.common.keys import Keys

    target = Target.resolve("registration-race", "odp2014")
    path = tmp_path / "race.html"
    write_html(race_execution, path, target=target)
    page = path.read_text()
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    assert "<link" not in page
    assert " src=" not in page

    browser.get(path.as_uri())
    assert _errors(browser) == []
    assert browser.find_element("id", "verdict").text == "stale-translation, stale-dma"
    assert _text(browser, "stepno") == "step 1 / 46"
    first = _text(browser, "ran")
    browser.find_element("tag name", "h1").click()
    for _ in range(4):
        _key(browser, Keys.ARROW_RIGHT)
    assert _text(browser, "stepno") == "step 5 / 46"
    assert _text(browser, "ran") != first or _text(browser, "locks") != ""
    assert "umem_rwsem" in _text(browser, "locks")

    _key(browser, "p")  # the first preemption: register runs while madvise is mid-invalidation
    assert _text(browser, "stepno") == "step 28 / 46"
    assert "preemption" in _text(browser, "ran")
    assert "inv0" in _text(browser, "invalidations")

    assert not browser.find_element("id", "violation").is_displayed()
    _key(browser, "v")
    assert _text(browser, "stepno") == "step 39 / 46"
    sentence = _text(browser, "violation")
    assert browser.find_element("id", "violation").is_displayed()
    assert "stale-translation" in sentence
    assert "installed it at step 39" in sentence
    assert "0x14000 was unmapped" in sentence
    assert "STALE" in _text(browser, "regions")
    assert _errors(browser) == []

    shot = tmp_path / "shot.png"
    assert browser.save_screenshot(str(shot))
    _assert_not_blank(shot)


def test_a_general_program_and_a_deadlock(browser: Any, tmp_path: Path) -> None:
    from odp_async.sim import RandomChooser

    target = Target.resolve("classic:lock-order")
    ex = target.run(RandomChooser(0), max_steps=20_000, trace=True)
    path = tmp_path / "lock-order.html"
    write_html(ex, path, target=target)
    browser.get(path.as_uri())
    assert _errors(browser) == []
    assert browser.find_element("id", "verdict").text == "deadlock"
    assert "no regions" in _text(browser, "regions")
    browser.find_element("tag name", "h1").click()
    _key(browser, "v")
    assert _text(browser, "stepno") == "step 7 / 7"
    sentence = _text(browser, "violation")
    assert "AB waits for b, held by BA" in sentence
    assert "waiters" in _text(browser, "locks")


def _assert_not_blank(path: Path) -> None:
    from PIL import Image, ImageStat

    image = Image.open(path).convert("L")
    assert image.size[0] >= 800
    stat = ImageStat.Stat(image)
    assert stat.stddev[0] > 20, f"screenshot looks blank (stddev {stat.stddev[0]:.1f})"


def test_a_general_programs_variables_step_by_step(browser: Any, tmp_path: Path) -> None:
    from odp_async.sim import RandomChooser

    target = Target.resolve("classic:lost-update")
    ex = target.run(RandomChooser(0), max_steps=1000, trace=True)
    path = tmp_path / "lost-update.html"
    write_html(ex, path, target=target)
    browser.get(path.as_uri())
    assert _errors(browser) == []
    browser.find_element("tag name", "h1").click()
    before = _text(browser, "variables")
    for _ in range(4):
        _key(browser, "l")
    assert _text(browser, "stepno") == "step 5 / 8"
    after = _text(browser, "variables")
    assert after != before
    assert after.count("value 0") == 2
    _key(browser, "v")
    assert "lost update" in _text(browser, "violation")


COMMENT_OPENER = """
from odp_async import checkpoint, task_group


async def opener():
    box = {"n": 0}

    async def bump():
        n = box["n"]
        await checkpoint("read")
        box["n"] = n + 1

    async with task_group() as tg:
        tg.start_soon(bump, name="f<!--<script>")
        tg.start_soon(bump, name="g</script><b>")
    assert box["n"] == 2, box
"""


def test_a_task_name_holding_a_comment_opener_leaves_the_page_working(
    browser: Any, tmp_path: Path, user_module: Any
) -> None:
    """Trial 21c f9: ``<!--<script>`` in a name put the parser of the data block into
    its double-escaped state, so the page's own ``</script>`` no longer closed it and
    its code never ran (an empty step counter and task table)."""
    from odp_async.sim import RandomChooser

    module = user_module(COMMENT_OPENER, "html_opener")
    target = Target.resolve(f"{module.__name__}:opener")
    ex = target.run(RandomChooser(0), max_steps=1000, trace=True)
    path = tmp_path / "opener.html"
    write_html(ex, path, target=target)
    page = path.read_text()
    assert "<!--<script>" not in page.split('id="data">', 1)[1].split("</script>", 1)[0]
    browser.get(path.as_uri())
    assert _errors(browser) == []
    assert len(browser.find_elements("tag name", "script")) == 2
    assert _text(browser, "stepno").startswith("step 1 / ")
    tasks = _text(browser, "tasks")
    assert "f<!--<script>" in tasks, tasks
    assert "g</script><b>" in tasks, tasks
