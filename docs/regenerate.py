"""Regenerate the README's pictures: docs/registration-race.png and docs/report.png.

Run from the repository root: ``.venv/bin/python docs/regenerate.py`` (needs the ``test``
extra and Debian's chromium + chromium-driver).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from odp_async.explore.target import Target
from odp_async.report import Timeline, render_png, write_html
from odp_async.scenarios import BUILTIN
from odp_async.sim import ScriptChooser

DOCS = Path(__file__).parent


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains

    target = Target.resolve("registration-race", "odp2014")
    script = BUILTIN["registration-race"].script
    ex = target.run(ScriptChooser(script), max_steps=20_000, trace=True)
    render_png(Timeline.from_execution(ex, title=target.label), DOCS / "registration-race.png")
    tmp = Path(tempfile.mkdtemp(prefix="odp-docs-"))
    try:
        page = tmp / "race.html"
        write_html(ex, page, target=target)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", "--window-size=1360,1300", f"--user-data-dir={tmp / 'profile'}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(page.as_uri())
            driver.find_element("tag name", "h1").click()
            ActionChains(driver).send_keys("v").perform()
            driver.save_screenshot(str(DOCS / "report.png"))
        finally:
            driver.quit()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
