"""Screenshots of every tab of the browser UI at a given width, for docs/ui.md.

    nice -n 19 .venv/bin/python scripts/ui_screenshots.py WORKSPACE [--out docs/ui] [--width 1280]

Point it at a finished workspace (frames, faces, a trained model, result.mp4, report/); it starts the app on
127.0.0.1, drives Debian's /usr/bin/chromium with Playwright and writes one PNG per tab. Nothing in the
workspace is changed except the thumbnail cache."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

TABS = ("workspace", "faces", "manual", "mask", "train", "merge")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def serve(workspace: Path):
    import uvicorn

    from facedouble.web.app import create_app

    app = create_app(workspace, token="screenshots")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return srv, f"http://127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/ui"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=860)
    ap.add_argument("--tabs", default=",".join(TABS))
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    srv, url = serve(a.workspace)
    a.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_context(viewport={"width": a.width, "height": a.height}, bypass_csp=True).new_page()
        page.on("pageerror", lambda e: print("page error:", e))
        page.on("console", lambda m: m.type in ("error", "warning") and print("console:", m.text))
        page.goto(f"{url}/?token=screenshots")
        page.set_default_timeout(180_000)                 # a loaded 2-core machine answers slowly
        page.wait_for_selector("#stage-table tbody tr")
        for tab in a.tabs.split(","):
            page.click(f"#tabs button[data-tab={tab}]")
            if tab == "workspace":
                page.click("#form-extract > summary")            # a grouped form, open
            elif tab == "faces":
                page.wait_for_selector("#faces-items .face img")
                page.locator("#faces-items .face").first.click()
            elif tab == "manual":
                page.wait_for_function("!document.querySelector('#manual-empty').hidden || "
                                       "!document.querySelector('#manual-editor').hidden")
            elif tab == "mask":                                  # the first labelled face, mesh overlay on
                page.wait_for_function("document.querySelector('#mask-canvas').dataset.face || "
                                       "!document.querySelector('#mask-empty').hidden")
                labelled = page.locator("#mask-list .mask-item.labelled").first
                if labelled.count():
                    name = labelled.get_attribute("data-name")
                    labelled.click()
                    page.wait_for_function(f"document.querySelector('#mask-canvas').dataset.face === '{name}'")
                if page.is_enabled("#mask-show-mesh"):
                    page.check("#mask-show-mesh")
                    page.wait_for_function("XS.overlay.mesh || !document.querySelector('#mask-show-mesh').checked")
            elif tab == "merge":
                page.check("#merge-zoom")
                page.wait_for_function("document.querySelector('#merge-result').dataset.seq")
            elif tab == "train":
                page.wait_for_function("document.querySelector('#train-loss').dataset.points")
                page.wait_for_function("(() => { const i = document.querySelector('#train-preview');"
                                       " return i.hidden || (i.complete && i.naturalWidth > 0); })()")
            page.wait_for_timeout(1500)
            path = a.out / f"{tab}_{a.width}.png"
            page.screenshot(path=str(path))
            print(path)
        browser.close()
    srv.should_exit = True


if __name__ == "__main__":
    main()
