"""The browser UI's Live tab: the endpoints (start a file source, watermarked frames, settings while it runs,
refusals, stop with the output file closed and marked) and, in real Chromium, moving frames and Stop.

The model is a tiny untrained facedouble model saved in the workspace (tests/support/models.py); the API
test feeds it one frame per permit (`Gated`) so the test decides how far the pipeline gets."""

from __future__ import annotations

import shutil
import threading
import time

import av
import cv2
import numpy as np
import pytest

from facedouble.inference import load_model
from facedouble.provenance import watermark
from support.browser import require_browser, served
from support.client import TOKEN, make_client
from support.models import tiny_untrained_model


class Gated:
    """A model that swaps one face per permit of `gate` (the warm-up at start takes one too)."""

    def __init__(self, model):
        self.inner = model
        self.gate = threading.Semaphore(0)

    def __getattr__(self, name):
        if name in ("model", "device"):   # not a torch model to re-wrap (inference.live_runner): the gate stays
            raise AttributeError(name)
        return getattr(self.inner, name)

    def swap_numpy(self, faces):
        assert self.gate.acquire(timeout=120), "the test gave no permit"
        return self.inner.swap_numpy(faces)


@pytest.fixture(scope="module")
def live_template(tmp_path_factory, media):
    from facedouble.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("web-live") / "ws").create()
    shutil.copy(media / "single_face.mp4", ws.root / "data_dst.mp4")
    tiny_untrained_model(ws.model)
    return ws


@pytest.fixture()
def live_ws(live_template, tmp_path):
    from facedouble.workspace import Workspace

    shutil.copytree(live_template.root, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


@pytest.fixture(scope="module")
def source_frames(media):
    with av.open(str(media / "single_face.mp4")) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _decode(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _next_frame(client, after: str, timeout: float = 120.0) -> tuple[str, np.ndarray]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = client.get("/api/live/frame", params={"after": after})
        if r.status_code == 200:
            assert r.headers["content-type"] == "image/jpeg" and r.headers["cache-control"] == "no-store"
            return r.headers["x-live-frame"], _decode(r.content)
        assert r.status_code == 204, r.text
    raise AssertionError("no new live frame")


def _wait(client, test, timeout: float = 120.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = client.get("/api/live/status").json()
        if test(st):
            return st
        time.sleep(0.05)
    raise AssertionError(f"live status never reached the state: {st}")


def test_live_api_start_frames_settings_stop(live_ws, source_frames):
    from facedouble.provenance.verify import verify_file

    client = make_client(live_ws)
    gated = Gated(load_model(live_ws.model, device="cpu"))
    client.app.state.live.model_factory = lambda cfg: gated
    opts = client.get("/api/live/options").json()
    assert "data_dst.mp4" in opts["videos"] and opts["models"] == ["sae"]
    assert {"opacity", "erode", "blur", "face_scale", "color_transfer", "morph", "delay_ms"} <= set(opts["settings"])
    assert {f["name"] for f in opts["fields"]} >= {"source", "out", "model_file", "opacity", "delay_ms"}
    assert client.get("/api/live/frame").status_code == 204                      # nothing yet
    assert client.post("/api/live/settings", json={"settings": {"opacity": 5}}).status_code == 409

    gated.gate.release(1 + 4)                                                   # the warm-up and four faces
    r = client.post("/api/live/start", json={"options": {"source": "data_dst.mp4", "out": "live.mp4",
                                                        "color_transfer": "none", "blur": 20}})
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["running"] and st["model"]["name"] == "sae" and st["model"]["resolution"] == 64
    assert not st["morphable"] and st["source"]["kind"] == "file" and st["source"]["width"] == 640
    assert st["settings"]["opacity"] == 100 and st["settings"]["blur"] == 20
    job = client.get("/api/job").json()["job"]
    assert job["name"] == "live" and job["state"] == "running"                 # the UI's job: bar, Cancel

    # a frame the page shows: the swapped face (the untrained model's) on the source frame, watermarked
    key, shown = _next_frame(client, "")
    index = int(key.split(":")[1])
    changed = np.abs(shown.astype(float) - source_frames[index]).max(axis=2) > 15
    assert 0.05 < changed.mean() < 0.5, changed.mean()        # about 0.13: the face and the crop around it
    mark = watermark.detect(shown)
    assert mark.found and mark.payload["run_id"] == st["run_id"]

    # refusals while it runs: one sentence each
    r = client.post("/api/live/settings", json={"settings": {"morph": 50}})
    assert r.status_code == 400 and "no morph factor" in r.json()["detail"]
    r = client.post("/api/live/settings", json={"settings": {"source": "0"}})
    assert r.status_code == 400 and "cannot change while live runs" in r.json()["detail"]
    r = client.post("/api/live/settings", json={"settings": {"opacity": 150}})
    assert r.status_code == 400 and "between 0 and 100" in r.json()["detail"]
    r = client.post("/api/live/start", json={"options": {"source": "data_dst.mp4"}})
    assert r.status_code == 409 and "live is still running" in r.json()["detail"]

    # opacity 0 while it runs: the frames blended from now on are the source's own (marked)
    r = client.post("/api/live/settings", json={"settings": {"opacity": 0, "erode": 10}})
    assert r.status_code == 200 and r.json()["settings"]["opacity"] == 0 and r.json()["settings"]["erode"] == 10
    out_then = client.get("/api/live/status").json()["stats"]["frames_out"]
    gated.gate.release(12)
    _wait(client, lambda s: s["stats"]["frames_out"] >= out_then + 8)
    key2, shown2 = _next_frame(client, key)
    index2 = int(key2.split(":")[1])
    assert index2 > index
    changed = np.abs(shown2.astype(float) - source_frames[index2]).max(axis=2) > 15
    assert changed.mean() < 0.01, changed.mean()              # the source's pixels but for JPEG and the mark
    assert watermark.detect(shown2).found

    # stop: the run ends, the job is done, the file is closed, complete and marked
    gated.gate.release(500)
    st = client.post("/api/live/stop").json()
    st = _wait(client, lambda s: not s["running"] and s["job"]["state"] != "running")
    assert st["job"]["state"] == "done" and "frame(s)" in st["job"]["message"]
    frames_out = st["stats"]["frames_out"]
    assert 12 <= frames_out <= 72
    with av.open(str(live_ws.root / "live.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == frames_out
    report = verify_file(live_ws.root / "live.mp4")
    assert report.watermark["found"] and report.c2pa["state"] == "valid" and report.tag
    assert client.get("/api/live/frame", params={"after": key2}).status_code in (200, 204)


def test_live_api_refuses_paths_outside_and_bad_sources(live_ws):
    client = make_client(live_ws)
    bad = [({"source": "/etc/hostname"}, 403), ({"source": "../data_dst.mp4"}, 403),
           ({"source": "data_dst.mp4", "out": "/tmp/elsewhere.mp4"}, 403),
           ({"source": "data_dst.mp4", "model_file": "/tmp/x.dfm"}, 403),
           ({"source": "data_dst.mp4", "audio": "/etc/hostname"}, 403),
           ({"source": "data_dst.mp4", "audio": "../data_dst.mp4"}, 403),
           ({"source": "data_dst.mp4", "audio": "alsa:file:/etc/hostname"}, 400),
           ({"source": "data_dst.mp4", "opacity": 150}, 400), ({"source": ""}, 400)]
    for options, code in bad:
        r = client.post("/api/live/start", json={"options": options})
        assert r.status_code == code, (options, r.text)
        assert "\n" not in r.json()["detail"]
    r = client.post("/api/live/start", json={"options": {"source": "/dev/video97"}})
    assert r.status_code == 400 and "no camera /dev/video97" in r.json()["detail"]
    r = client.post("/api/live/start", json={"options": {"source": "missing.mp4"}})
    assert r.status_code == 400 and "does not exist" in r.json()["detail"]
    st = client.get("/api/live/status").json()
    assert not st["running"] and not st["starting"] and st["job"]["state"] == "failed"
    assert not (live_ws.root / "live.mp4").exists()


# -- real Chromium ------------------------------------------------------------------------------------------

def test_live_tab_shows_moving_frames_and_stops(live_ws, artifacts):
    require_browser()
    from playwright.sync_api import sync_playwright

    from facedouble.web.app import create_app
    from support.browser import ARGS, CHROMIUM, no_overlaps

    app = create_app(live_ws.root, token=TOKEN)
    model = load_model(live_ws.model, device="cpu")
    paced = Gated(model)
    app.state.live.model_factory = lambda cfg: paced
    stop_pacing, pause = threading.Event(), threading.Event()

    def pace():                     # until paused (then the session runs but waits): the first 12 faces 80 ms
        given = 0                   # apart, then one every 0.5 s, so that the clip's 72 frames last about 30 s
        while not stop_pacing.is_set():  # however slowly a loaded machine's browser gets to the checks below
            if not pause.is_set():
                paced.gate.release(1)
                given += 1
            time.sleep(0.08 if given < 12 else 0.5)

    threading.Thread(target=pace, daemon=True).start()
    errors: list[str] = []
    try:
        with served(app) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            pg = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True).new_page()
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.goto(f"{url}/?token={TOKEN}")
            pg.wait_for_selector("#stage-table tbody tr")                       # the page is set up
            pg.click("#tabs button[data-tab=live]")
            pg.wait_for_selector("#live-form [name=source]")
            assert pg.is_disabled("#live-stop") and not pg.is_disabled("#live-start")
            for d in pg.locator("#tab-live details.group").all():
                d.evaluate("d => d.open = true")
            assert no_overlaps(pg, "live, stopped") > 20                         # as tests/web/test_web_layout.py
            pg.fill("#live-form [name=source]", "data_dst.mp4")
            pg.fill("#live-form [name=out]", "none")
            pg.locator("#live-form [name=out]").blur()    # its help line folds away: the buttons move up
            pg.uncheck("#live-realtime")                  # the file at the pipeline's speed: no frame dropped
            pg.click("#live-start")
            # moving frames: the shown picture is replaced by newer frames, each a real JPEG frame
            try:
                pg.wait_for_function("(+document.querySelector('#live-view').dataset.count || 0) >= 3",
                                     timeout=120_000)
            except Exception:
                pg.screenshot(path=str(artifacts / "ui_live_failed.png"), full_page=True)
                raise AssertionError(f"no moving frames: {pg.inner_text('#live-state')!r} {pg.inner_text('#live-msg')!r} "
                                     f"{pg.get_attribute('#live-view', 'data-count')} {errors}") from None
            # shown as the MJPEG stream (/api/live/mjpeg), not by the polling fall-back
            assert pg.get_attribute("#live-view", "data-mode") == "mjpeg"
            assert "/api/live/mjpeg" in pg.get_attribute("#live-view", "src")
            first = pg.get_attribute("#live-view", "data-key")
            pg.wait_for_function(f"document.querySelector('#live-view').dataset.key !== '{first}'", timeout=30_000)
            # the picture is a 640 px frame (waited for: between two frames the next one may still be decoding)
            pg.wait_for_function("document.querySelector('#live-view').naturalWidth === 640", timeout=30_000)
            pg.wait_for_function("/fps/.test(document.querySelector('#live-stats').textContent)", timeout=30_000)
            assert not pg.is_disabled("#live-stop") and pg.is_disabled("#live-start")
            assert no_overlaps(pg, "live, running") > 20
            pg.screenshot(path=str(artifacts / "ui_live.png"), full_page=True)
            pause.set()                 # the session keeps running (its model waits) however slow the test is
            # a control while it runs reaches the session
            pg.fill("#live-controls [name=opacity]", "40")
            pg.wait_for_function("document.querySelector('#live-msg').textContent.includes('opacity 40')",
                                 timeout=30_000)
            assert app.state.live.session.settings.opacity == 40
            pg.locator("#live-controls [name=opacity]").blur()
            assert app.state.live.session.running
            pg.click("#live-stop")
            paced.gate.release(1000)    # the frames in the pipeline finish
            pg.wait_for_function("document.querySelector('#live-state').textContent.includes('stopped')",
                                 timeout=60_000)
            assert not app.state.live.session.running
            assert pg.is_disabled("#live-stop") and not pg.is_disabled("#live-start")
            browser.close()
    finally:
        stop_pacing.set()
        paced.gate.release(1000)
    assert not errors, errors


# -- the MJPEG stream, read by a plain HTTP client --------------------------------------------------------------

def _mjpeg_parts(resp, count: int, boundary: bytes) -> list[tuple[str, bytes]]:
    """Read `count` parts of a multipart/x-mixed-replace body: (X-Live-Frame, JPEG bytes) each."""
    parts = []
    while len(parts) < count:
        line = resp.readline()
        assert line, "the MJPEG stream ended early"
        if line.strip() != b"--" + boundary:
            continue
        headers = {}
        while True:
            h = resp.readline().strip()
            if not h:
                break
            name, _, value = h.decode("ascii").partition(":")
            headers[name.strip().lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        data = resp.read(int(headers["content-length"]))
        parts.append((headers["x-live-frame"], data))
    return parts


def test_live_mjpeg_stream_sends_moving_marked_frames(live_ws, source_frames):
    import http.client
    import json
    from urllib.parse import urlsplit

    from facedouble.web.app import create_app

    app = create_app(live_ws.root, token=TOKEN)
    paced = Gated(load_model(live_ws.model, device="cpu"))
    app.state.live.model_factory = lambda cfg: paced
    stop_pacing = threading.Event()

    def pace():
        while not stop_pacing.is_set():
            paced.gate.release(1)
            time.sleep(0.05)

    threading.Thread(target=pace, daemon=True).start()
    headers = {"X-Token": TOKEN}
    try:
        with served(app) as url:
            host = urlsplit(url)
            api = http.client.HTTPConnection(host.hostname, host.port, timeout=200)
            api.request("POST", "/api/live/start", body=json.dumps({"options": {
                "source": "data_dst.mp4", "out": "none", "color_transfer": "none"}}),
                headers={**headers, "Content-Type": "application/json"})
            r = api.getresponse()
            st = json.loads(r.read())
            assert r.status == 200 and st["running"], st
            run_id = st["run_id"]

            stream = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
            stream.request("GET", "/api/live/mjpeg", headers=headers)
            resp = stream.getresponse()
            assert resp.status == 200
            kind = resp.getheader("content-type")
            assert kind.startswith("multipart/x-mixed-replace") and resp.getheader("cache-control") == "no-store"
            boundary = kind.split("boundary=")[1].encode()
            parts = _mjpeg_parts(resp, 4, boundary)
            keys = [k for k, _ in parts]
            assert len(set(keys)) == len(keys) >= 3, keys          # a new frame each part
            indices = [int(k.split(":")[1]) for k in keys]
            assert indices == sorted(indices)                       # moving forward
            for key, data in parts:
                frame = _decode(data)
                assert frame.shape == (360, 640, 3)
                mark = watermark.detect(frame)
                assert mark.found and mark.payload["run_id"] == run_id, key
                index = int(key.split(":")[1])
                changed = np.abs(frame.astype(float) - source_frames[index]).max(axis=2) > 15
                assert 0.05 < changed.mean() < 0.5, changed.mean()   # the swapped face on its source frame

            # stopping the session ends the stream (no connection left hanging)
            api.request("POST", "/api/live/stop", body="{}", headers={**headers, "Content-Type": "application/json"})
            assert api.getresponse().read() and True
            end = time.monotonic() + 60
            while resp.read(65536):
                assert time.monotonic() < end, "the MJPEG stream did not end after stop"
            stream.close()
            api.close()
    finally:
        stop_pacing.set()
        paced.gate.release(1000)
