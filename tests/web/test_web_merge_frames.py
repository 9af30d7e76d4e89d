"""Per-frame merge settings in the browser UI: the config route applies a frame's options to that frame, to it and
the following frames, or to all frames (API tests), a merge job honours the stored ranges, and in real Chromium the
tuner's apply buttons store a range, the slider marks where it starts and moving the slider shows each frame's
options in the form (skips, with the reason, without chromium or playwright)."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from facedouble.config import MergeConfig
from support.client import make_client
from support.swappers import identity_factory

BASE = {"mode": "overlay", "mask": "dst", "smooth_frames": 0}


def _ranges(ws):
    cfg = MergeConfig.load(ws.frames("dst") / "merge_config.json")
    return cfg, [(r.start, r.end, r.overrides()) for r in cfg.ranges]


def _wait(c, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = c.get("/api/job").json()["job"]
        if job and job["state"] not in ("running", "queued"):
            return job
        time.sleep(0.2)
    raise AssertionError("the job did not finish")


def test_config_route_applies_options_per_frame(web_ws):
    c = make_client(web_ws)
    got = c.get("/api/merge/config").json()
    assert got["options"]["ranges"] == [] and "erode" in got["frame_options"] and "smooth_frames" not in got["frame_options"]
    assert "sharpen" in got["frame_options"] and "motion_blur" in got["frame_options"]
    c.post("/api/merge/config", json={"options": BASE}).raise_for_status()
    # this and following frames: from 2 to the last (no change after it)
    r = c.post("/api/merge/config", json={"options": {**BASE, "erode": 30}, "frame": 2, "scope": "following"})
    assert r.status_code == 200, r.text
    assert r.json()["options"]["ranges"] == [{"start": 2, "end": None, "options": {"erode": 30}}]
    cfg, ranges = _ranges(web_ws)
    assert ranges == [(2, None, {"erode": 30})] and cfg.for_frame(1).erode == 0 and cfg.for_frame(5).erode == 30
    # this frame: frame 4 only, inside that range
    r = c.post("/api/merge/config", json={"options": {**BASE, "erode": 30, "color_transfer": "rct"}, "frame": 4,
                                         "scope": "frame"})
    assert r.status_code == 200, r.text
    _, ranges = _ranges(web_ws)
    assert ranges == [(2, 3, {"erode": 30}), (4, 4, {"erode": 30, "color_transfer": "rct"}), (5, None, {"erode": 30})]
    # an option of the whole run changed on a frame goes to the run, and the answer says so
    r = c.post("/api/merge/config", json={"options": {**BASE, "erode": 30, "color_transfer": "rct", "smooth_frames": 2},
                                         "frame": 4, "scope": "frame"})
    assert r.json()["run_changes"] == ["smooth_frames"]
    cfg, ranges = _ranges(web_ws)
    assert cfg.smooth_frames == 2 and len(ranges) == 3
    # without a scope: the run's options, the ranges kept
    c.post("/api/merge/config", json={"options": {**BASE, "blur": 10}}).raise_for_status()
    cfg, ranges = _ranges(web_ws)
    assert cfg.blur == 10 and len(ranges) == 3
    # refusals: one sentence each, nothing stored
    before = (web_ws.frames("dst") / "merge_config.json").read_bytes()
    for body, words in [({"options": BASE, "frame": 2, "scope": "later"}, "scope must be one of frame, following, all"),
                        ({"options": BASE, "scope": "frame"}, "Give the frame number"),
                        ({"options": BASE, "frame": 0, "scope": "frame"}, "frame must be a frame number"),
                        ({"options": {**BASE, "erode": 900}, "frame": 2, "scope": "frame"}, "--erode must be between"),
                        ({"options": {**BASE, "ranges": []}, "frame": 2, "scope": "frame"}, "--ranges cannot be set")]:
        r = c.post("/api/merge/config", json=body)
        assert r.status_code == 400 and words in r.json()["detail"], (body, r.text)
    assert (web_ws.frames("dst") / "merge_config.json").read_bytes() == before
    # all frames: these options everywhere, the ranges gone
    r = c.post("/api/merge/config", json={"options": {**BASE, "erode": 7}, "frame": 4, "scope": "all"})
    cfg, ranges = _ranges(web_ws)
    assert ranges == [] and cfg.erode == 7 and r.json()["options"]["ranges"] == []


def test_config_route_keeps_a_hand_edited_file_it_cannot_read(web_ws):
    c = make_client(web_ws)
    path = web_ws.frames("dst") / "merge_config.json"
    path.write_text(json.dumps({"options": {"ranges": [{"start": 3, "end": 1}]}}))
    for r in (c.get("/api/merge/config"),
              c.post("/api/merge/config", json={"options": BASE, "frame": 2, "scope": "frame"})):
        assert r.status_code == 400 and "ends before it starts" in r.json()["detail"] and "merge_config.json" in r.json()["detail"]
    assert json.loads(path.read_text())["options"]["ranges"] == [{"start": 3, "end": 1}]   # not overwritten


def test_merge_job_uses_each_frames_options(web_ws, monkeypatch):
    """Frame 3 set to the raw mask layer: its merged file is the mask on black; the others are the frame."""
    from facedouble.merge import merger

    monkeypatch.setattr(merger, "load_swapper", identity_factory)
    c = make_client(web_ws)
    c.post("/api/merge/config", json={"options": BASE}).raise_for_status()
    c.post("/api/merge/config", json={"options": {**BASE, "mode": "raw", "raw": "mask"}, "frame": 3,
                                      "scope": "frame"}).raise_for_status()
    c.post("/api/jobs", json={"stage": "merge", "options": {}}).raise_for_status()
    job = _wait(c)
    assert job["state"] == "done", job
    for n in (1, 2, 3, 4):
        out = cv2.imread(str(web_ws.merged / f"{n:06d}.png")).astype(float)
        dst = cv2.imread(str(web_ws.frames("dst") / f"{n:06d}.png")).astype(float)
        dark = float((out.max(axis=2) < 8).mean())
        if n == 3:
            assert dark > 0.6 and np.abs(out - dst).mean() > 30, n    # black around a white face mask
        else:
            assert dark < 0.2 and np.abs(out - dst).mean() < 3, n     # the frame, the face put back in place


# -- the tuner in Chromium --------------------------------------------------------------------------------------

from support.browser import CHROMIUM, no_overlaps, sync_playwright  # noqa: E402


@pytest.mark.skipif(sync_playwright is None or not CHROMIUM.exists(), reason="chromium or playwright is missing")
def test_tuner_applies_settings_to_following_frames_and_marks_the_slider(ui, artifacts):
    pg, ws = ui
    pg.click("#tabs button[data-tab=merge]")
    pg.wait_for_function("document.querySelector('#merge-result').dataset.seq")
    slider = pg.locator("#merge-frame")

    def go(index: int, number: int):
        slider.focus()
        pg.keyboard.press("Home")
        for _ in range(index):
            pg.keyboard.press("ArrowRight")
        pg.wait_for_function(f"document.querySelector('#merge-result').dataset.frame === '{number}'")

    go(2, 3)
    assert pg.input_value("#merge-form input[name=erode]") == "0"
    pg.fill("#merge-form input[name=erode]", "40")
    pg.wait_for_selector("#merge-form .field.changed[data-name=erode]")
    assert "1 change(s) not applied" in pg.inner_text("#merge-apply-note")
    pg.click("#merge-apply-following")
    pg.wait_for_function("document.querySelector('#merge-msg').textContent.includes('saved')")
    assert "frames 3 to the last" in pg.inner_text("#merge-msg")
    # stored: one range from frame 3 on, with erode 40
    _, ranges = _ranges(ws)
    assert ranges == [(3, None, {"erode": 40})]
    # the slider: a tick at frame 3's place (index 2) and a bar from there to the end
    assert pg.eval_on_selector_all("#merge-marks option", "os => os.map(o => o.value)") == ["2"]
    seg = pg.locator("#merge-ranges .seg")
    assert seg.count() == 1 and seg.get_attribute("data-start") == "3" and seg.get_attribute("data-end") == ""
    sb, tb = slider.bounding_box(), seg.bounding_box()
    thumb = 20  # the bar starts at frame 3's place on the slider: half way (index 2 of 0..4), within a thumb
    assert abs(tb["x"] - (sb["x"] + sb["width"] / 2)) < thumb and abs(tb["x"] + tb["width"] - sb["x"] - sb["width"]) < thumb
    assert pg.inner_text("#merge-frame-range") == "own settings: frames 3 to the last"
    assert not pg.locator("#merge-form .field.changed").count()
    # moving to a frame shows its options: frame 1 the run's, frame 5 the range's
    go(0, 1)
    assert pg.input_value("#merge-form input[name=erode]") == "0" and pg.inner_text("#merge-frame-range") == ""
    go(4, 5)
    assert pg.input_value("#merge-form input[name=erode]") == "40"
    # this frame only, with a face-detail option: frame 4 splits the range, the slider gets its marks
    go(3, 4)
    pg.fill("#merge-form input[name=sharpen]", "30")
    pg.click("#merge-apply-frame")
    pg.wait_for_function("document.querySelectorAll('#merge-ranges .seg').length === 3")
    _, ranges = _ranges(ws)
    assert ranges == [(3, 3, {"erode": 40}), (4, 4, {"erode": 40, "sharpen": 30}), (5, None, {"erode": 40})]
    assert pg.eval_on_selector_all("#merge-marks option", "os => os.map(o => o.value)") == ["2", "3", "4"]
    no_overlaps(pg, "merge with per-frame settings")
    pg.screenshot(path=str(artifacts / "ui_merge_frames.png"))
    # all frames: the ranges are gone, every frame shows the form's options
    pg.fill("#merge-form input[name=sharpen]", "0")
    pg.click("#merge-save")
    pg.wait_for_function("document.querySelectorAll('#merge-ranges .seg').length === 0")
    cfg, ranges = _ranges(ws)
    assert ranges == [] and cfg.erode == 40 and cfg.sharpen == 0
    go(0, 1)
    assert pg.input_value("#merge-form input[name=erode]") == "40"
    # an edit not applied is not carried to another frame, and the page says so
    pg.fill("#merge-form input[name=erode]", "12")
    go(1, 2)
    pg.wait_for_function("document.querySelector('#notices').textContent.includes('1 change(s) on frame 1 were not applied')")
    assert pg.input_value("#merge-form input[name=erode]") == "40" and not pg.locator("#merge-form .field.changed").count()
