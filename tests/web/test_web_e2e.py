"""The browser UI end to end: uvicorn on 127.0.0.1 in a thread, Debian's chromium driven by Playwright.

Open the app through the token URL, sort and trash a face, confirm a manual rectangle, change a merge
option and see the preview change, verify the result video's provenance and make the quality report, and
see the training identity curve. Screenshots go to test-artifacts/. Skips (with the reason) when
/usr/bin/chromium or the playwright package is missing, except under CI=true, where that fails the run;
never downloads a browser."""

from __future__ import annotations

import time

import pytest

from support.browser import ARGS, CHROMIUM, require_browser, served, sync_playwright
from support.client import TOKEN
from support.swappers import identity_factory
from support.workspaces import add_result

@pytest.fixture(scope="session", autouse=True)
def _browser_present():  # session scope: decided before the (costly) workspace fixtures
    """Skip without a browser on a developer's machine; in CI a missing browser fails the run instead, so the
    UI is never shipped untested because an image lost its chromium."""
    require_browser()


@pytest.fixture()
def server(web_ws):
    from facedouble.web.app import create_app

    app = create_app(web_ws.root, token=TOKEN, swapper_factory=identity_factory)
    with served(app) as url:
        yield url, web_ws


@pytest.fixture()
def page(server, artifacts):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        # the app's Content-Security-Policy forbids eval; Playwright's wait_for_function needs it
        pg = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True).new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg, server[0], server[1]
        browser.close()
        assert not errors, errors


def test_open_sort_and_trash(page, artifacts):
    pg, url, ws = page
    resp = pg.goto(url + "/")
    assert resp.status == 401                                        # no token: refused
    pg.goto(f"{url}/?token={TOKEN}")
    assert pg.url == url + "/"                                       # the token moved into a cookie
    pg.wait_for_selector("#stage-table tbody tr")
    assert "faces (aligned)" in pg.inner_text("#stage-table")
    assert pg.locator("#form-sort select[name=by] option").count() == 14   # the sort command's methods
    pg.screenshot(path=str(artifacts / "ui_workspace.png"), full_page=True)

    pg.click("#tabs button[data-tab=faces]")
    pg.wait_for_selector("#faces-items .face img")
    assert pg.locator("#faces-items .face").count() == 4
    pg.select_option("#faces-sort", "brightness")
    pg.click("#faces-sort-run")
    pg.wait_for_function("document.querySelector('#job-name').textContent.includes('done')", timeout=60_000)
    pg.wait_for_function("[...document.querySelectorAll('#faces-items .face')].every(d => /^\\d{5}_/.test(d.dataset.name))",
                         timeout=10_000)
    first = pg.locator("#faces-items .face").first
    name = first.get_attribute("data-name")
    first.click()
    pg.wait_for_function("document.querySelector('#faces-big').complete && document.querySelector('#faces-big').naturalWidth > 0")
    pg.screenshot(path=str(artifacts / "ui_faces.png"), full_page=True)
    pg.click("#faces-trash")
    pg.wait_for_function("document.querySelectorAll('#faces-items .face').length === 3")
    assert (ws.aligned_trash("src") / name).is_file() or any(ws.aligned_trash("src").iterdir())
    assert len(list(ws.aligned("src").glob("*.jpg"))) == 3


def test_manual_rectangle(page, artifacts):
    pg, url, ws = page
    pg.goto(f"{url}/?token={TOKEN}")
    pg.wait_for_selector("#stage-table tbody tr")
    pg.click("#tabs button[data-tab=manual]")
    pg.wait_for_function("document.querySelector('#manual-frame').value === '000005.png'")
    canvas = pg.locator("#manual-canvas")
    pg.wait_for_function("document.querySelector('#manual-canvas').width === 640")
    box = canvas.bounding_box()
    pg.mouse.move(box["x"] + 300, box["y"] + 100)
    pg.mouse.down()
    pg.mouse.move(box["x"] + 360, box["y"] + 170, steps=5)
    pg.mouse.move(box["x"] + 420, box["y"] + 240, steps=5)
    pg.mouse.up()
    # landmarks come back and are drawn (green points inside the rectangle)
    pg.wait_for_function("""(() => { const g = document.querySelector('#manual-canvas').getContext('2d');
        const d = g.getImageData(300, 100, 120, 140).data;
        for (let i = 0; i < d.length; i += 4) if (d[i + 1] > 200 && d[i] < 120 && d[i + 2] < 120) return true;
        return false; })()""", timeout=60_000)
    pg.screenshot(path=str(artifacts / "ui_manual.png"))
    pg.keyboard.press("Enter")
    # the editor says "saved ..." and then, when the frame list is reloaded, may already show the next
    # message; what counts is the face file the confirm wrote
    deadline = time.monotonic() + 60
    while not (ws.aligned("dst") / "000005_0.jpg").is_file() and time.monotonic() < deadline:
        pg.wait_for_timeout(200)
    assert (ws.aligned("dst") / "000005_0.jpg").is_file()


def test_merge_option_changes_preview(page, artifacts, media):
    pg, url, ws = page
    run_id = add_result(ws, media)                  # a real, watermarked and signed result.mp4
    pg.goto(f"{url}/?token={TOKEN}")
    pg.wait_for_selector("#stage-table tbody tr")
    pg.click("#tabs button[data-tab=merge]")
    pg.wait_for_function("document.querySelector('#merge-result').dataset.seq && document.querySelector('#merge-result').naturalWidth > 0",
                         timeout=30_000)
    first = pg.evaluate("document.querySelector('#merge-result').dataset.seq")
    pg.screenshot(path=str(artifacts / "ui_merge_before.png"), full_page=True)

    def pixels():
        return pg.evaluate("""(() => { const img = document.querySelector('#merge-result');
            const c = document.createElement('canvas'); c.width = 64; c.height = 36;
            const g = c.getContext('2d'); g.drawImage(img, 0, 0, 64, 36);
            return Array.from(g.getImageData(0, 0, 64, 36).data); })()""")

    before = pixels()
    pg.select_option("#merge-form select[name=mode]", "raw")
    pg.select_option("#merge-form select[name=raw]", "mask")
    pg.wait_for_function(f"document.querySelector('#merge-result').dataset.seq !== '{first}' && "
                         "document.querySelector('#merge-result').complete", timeout=30_000)
    pg.wait_for_function("document.querySelector('#merge-msg').textContent.includes('ms')")
    time.sleep(0.3)
    after = pixels()
    diff = sum(abs(a - b) for a, b in zip(before, after)) / len(before)
    assert diff > 5, diff
    ms = int(pg.inner_text("#merge-msg").split()[2])
    assert ms < 1000
    pg.screenshot(path=str(artifacts / "ui_merge_after.png"), full_page=True)
    pg.click("#merge-save")
    pg.wait_for_function("document.querySelector('#merge-msg').textContent.includes('saved')")
    from facedouble.config import MergeConfig

    saved = MergeConfig.load(ws.frames("dst") / "merge_config.json")
    assert saved.mode == "raw" and saved.raw == "mask"
    check_result_provenance_and_report(pg, artifacts, run_id)


def check_result_provenance_and_report(pg, artifacts, run_id: str) -> None:
    """Beside the result video: Verify provenance shows the three marks; the quality report block says there
    is none, then (after its button runs the real report stage) shows the checks and links to the page."""
    assert pg.get_attribute("#result-video", "src") == "/api/result/result.mp4"
    pg.wait_for_function("document.querySelector('#report-msg').textContent.includes('No quality report yet')")
    assert pg.locator("#report-link").is_hidden()
    pg.click("#verify-run")
    pg.wait_for_function("document.querySelectorAll('#verify-out li').length === 3", timeout=60_000)
    lines = pg.locator("#verify-out li")
    texts = lines.all_inner_texts()
    assert texts[0].startswith("watermark: found, run " + run_id), texts
    assert texts[1].startswith("C2PA: valid") and texts[2].startswith("container tag: facedouble"), texts
    assert run_id in texts[2]
    assert [lines.nth(i).get_attribute("class") for i in range(3)] == ["ok", "ok", "ok"]   # green
    assert "marked as AI-generated" in pg.inner_text("#verify-msg")

    pg.click("#report-run")
    pg.wait_for_function("document.querySelector('#job-name').textContent === 'report: done'", timeout=180_000)
    pg.wait_for_function("document.querySelectorAll('#report-checks li.check').length === 5", timeout=10_000)
    badges = pg.locator("#report-checks .badge")
    kinds = {badges.nth(i).get_attribute("class") for i in range(5)}
    assert kinds <= {"badge ok", "badge bad", "badge "} and ("badge ok" in kinds or "badge bad" in kinds)
    first = pg.locator("#report-checks li.check").first.inner_text()
    assert "identity retrieval" in first and "target >=" in first
    assert "identity over" in pg.inner_text("#report-checks")
    assert pg.locator("#report-link").is_visible() and pg.get_attribute("#report-link", "target") == "_blank"
    job_link = pg.locator("#job-report-link")                       # the finished job's message links to it too
    assert job_link.inner_text() == "open the report" and job_link.get_attribute("href").startswith("/api/report")
    pg.locator("#report-block").scroll_into_view_if_needed()
    pg.screenshot(path=str(artifacts / "ui_result_report.png"), full_page=True)
    with pg.context.expect_page() as opened:
        pg.click("#report-link")
    report = opened.value
    report.wait_for_load_state()
    assert report.title() == "facedouble quality report"
    report.close()


def test_training_identity_curve(page, artifacts):
    pg, url, ws = page
    (ws.model / "sae_options.json").write_text("{}")                 # enough of a model to be listed
    (ws.model / "sae.safetensors").write_bytes(b"")
    pg.goto(f"{url}/?token={TOKEN}")
    pg.wait_for_selector("#stage-table tbody tr")
    pg.click("#tabs button[data-tab=train]")
    pg.wait_for_function("document.querySelector('#train-identity').dataset.points === '0'")
    import json

    log = [{"iteration": i * 100, "nearer_src": min(1.0, i / 5), "same_as_src": i / 10, "mean_src": 0.9 - i * 0.06,
            "mean_dst": 0.5 + i * 0.03} for i in range(8)]
    (ws.model / "sae_identity.json").write_text(json.dumps(log))
    pg.wait_for_function("document.querySelector('#train-identity').dataset.points === '8'", timeout=10_000)
    # the curves are drawn: red (distance to src) and green (nearer src) pixels on the canvas
    colours = pg.evaluate("""(() => { const c = document.querySelector('#train-identity');
        const d = c.getContext('2d').getImageData(0, 20, c.width, c.height - 40).data;
        let red = 0, green = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i] > 180 && d[i + 1] < 90 && d[i + 2] < 90) red++;
          if (d[i + 1] > 130 && d[i] < 90 && d[i + 2] < 90) green++;
        }
        return [red, green]; })()""")
    assert colours[0] > 20 and colours[1] > 20, colours
    pg.screenshot(path=str(artifacts / "ui_train_identity.png"), full_page=True)
