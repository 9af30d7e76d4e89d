"""Fixtures of the browser UI tests: the app served to a real Chromium at 1280 px."""

from __future__ import annotations

import pytest

from support.browser import ARGS, CHROMIUM, RECORD_ALERTS, WIDTH, served, sync_playwright
from support.client import TOKEN
from support.swappers import identity_factory


@pytest.fixture()
def ui(web_ws):
    """(page, workspace): the app on a copy of the web workspace in Chromium, on its stage table. After the test:
    no page error and no alert() (results and errors go to the notices)."""
    from facedouble.web.app import create_app

    app = create_app(web_ws.root, token=TOKEN, swapper_factory=identity_factory)
    with served(app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        # the app's Content-Security-Policy forbids eval; Playwright's wait_for_function needs it
        ctx = browser.new_context(viewport={"width": WIDTH, "height": 860}, bypass_csp=True)
        ctx.add_init_script(RECORD_ALERTS)
        pg = ctx.new_page()
        pg.set_default_timeout(60_000)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(f"{url}/?token={TOKEN}")
        pg.wait_for_selector("#stage-table tbody tr")
        yield pg, web_ws
        alerts = pg.evaluate("window.__alerts")
        browser.close()
    assert not errors, errors
    assert alerts == [], alerts                      # results and errors go to the notices, never alert()
