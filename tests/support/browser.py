"""Chromium for the browser UI tests: Debian's chromium driven by Playwright (the tests never download one),
the app served on a loopback port, and the layout check (no overlapping controls, nothing wider than the
window)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")      # Debian's chromium: the browser tests never download one
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDTH = 1280                              # the window width the layout is checked at

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover
    sync_playwright = None

# every alert() is recorded instead of shown; the tests assert there was none
RECORD_ALERTS = "window.__alerts = []; window.alert = (m) => { window.__alerts.push(String(m)); };"

# Visible labels, controls, units, headings and plots of the active tab (and the bars above it) whose boxes
# intersect, leaving out pairs where one holds the other (a label around its checkbox); and how far the page
# is wider than the window.
OVERLAPS = """(() => {
  const sel = 'label, input, select, button, .unit, legend, summary, h3, figcaption, canvas, table';
  const roots = [document.querySelector('.tab.active'), document.querySelector('#tabs')];
  const els = roots.flatMap((r) => [...r.querySelectorAll(sel)]).filter((e) => {
    const b = e.getBoundingClientRect();
    return b.width > 0 && b.height > 0 && e.checkVisibility({ visibilityProperty: true, opacityProperty: false });
  });
  const boxes = els.map((e) => e.getBoundingClientRect());
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.name ? '[' + e.name + ']' : '') +
    (e.textContent ? ' "' + e.textContent.trim().slice(0, 24) + '"' : '');
  const bad = [];
  for (let i = 0; i < els.length; i++) for (let j = i + 1; j < els.length; j++) {
    const a = els[i], b = els[j];
    if (a.contains(b) || b.contains(a)) continue;
    const p = boxes[i], q = boxes[j];
    const w = Math.min(p.right, q.right) - Math.max(p.left, q.left), h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
    if (w > 1 && h > 1) bad.push(name(a) + ' x ' + name(b));
  }
  return { checked: els.length, overlaps: bad, overflow: document.documentElement.scrollWidth - window.innerWidth };
})()"""


def no_overlaps(pg, where: str) -> int:
    """Assert that no two controls of the page `pg` overlap and nothing runs off it; returns how many were checked."""
    r = pg.evaluate(OVERLAPS)
    assert r["overlaps"] == [], f"{where}: {r['overlaps'][:8]}"
    assert r["overflow"] <= 0, f"{where}: the page is {r['overflow']} px wider than the window"
    return r["checked"]


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if sync_playwright is None:
        return "the playwright package is not installed (pip install -r requirements/dev.txt)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    return None


def in_ci() -> bool:
    """CI=true (or 1/yes), as GitHub Actions, GitLab CI and most CI services set it."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_browser() -> None:
    """Skip without a browser on a developer's machine; in CI a missing browser fails the run instead, so the
    UI is never shipped untested because an image lost its chromium."""
    why = missing_browser()
    if why is None:
        return
    if in_ci():
        pytest.fail(f"CI=true but the browser tests cannot run: {why}", pytrace=False)
    pytest.skip(why)


@contextlib.contextmanager
def served(app):
    """The app served by uvicorn on a free loopback port in a thread; yields its URL, stops it after."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    end = time.monotonic() + 10
    while not srv.started and time.monotonic() < end:
        time.sleep(0.05)
    assert srv.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        th.join(10)
