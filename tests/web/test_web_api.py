"""The web UI's API (FastAPI TestClient) on a small real workspace: every endpoint, and the refusals
(token, Host, cross-origin, path traversal, upload size)."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from facedouble.config import MergeConfig, SortConfig
from facedouble.web import security
from facedouble.web.forms import build_config, option_schema
from support.client import TOKEN, make_client
from support.models import train_tiny


def _img(resp) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, resp.headers.get("content-type")
    return img


def _wait(client, timeout=120.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get("/api/job").json()["job"]
        if job["state"] != "running":
            return job
        time.sleep(0.1)
    raise AssertionError("job did not finish")


# -- safety --------------------------------------------------------------------------------------------

def test_token_missing_wrong_query_cookie(web_ws):
    c = make_client(web_ws)
    c.cookies.clear()
    assert c.get("/api/state").status_code == 401
    assert c.get("/").status_code == 401
    assert c.get("/api/state", headers={"X-Token": "nope"}).status_code == 403
    c.cookies.set("facedouble_token", "wrong")
    assert c.get("/api/state").status_code == 403
    c.cookies.clear()
    assert c.get("/?token=wrong").status_code == 403
    r = c.get(f"/?token={TOKEN}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert TOKEN in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    c.cookies.set("facedouble_token", TOKEN)
    page = c.get("/")
    assert page.status_code == 200 and "app.js" in page.text
    assert c.get("/api/state", headers={"X-Token": TOKEN}).status_code == 200
    assert c.get("/static/app.js").status_code == 200 and c.get("/static/app.css").status_code == 200


def test_host_and_origin_checks(web_ws):
    c = make_client(web_ws)
    assert c.get("/api/state", headers={"Host": "evil.example"}).status_code == 403   # DNS rebinding
    assert c.get("/api/state", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    body = {"names": ["000001_0.jpg"]}
    bad = c.post("/api/faces/src/trash", json=body, headers={"Origin": "http://evil.example"})
    assert bad.status_code == 403
    assert c.post("/api/faces/src/trash", json=body, headers={"Origin": "null"}).status_code == 403
    assert c.post("/api/faces/src/trash", json=body, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert (web_ws.aligned("src") / "000001_0.jpg").exists()          # nothing moved
    ok = c.post("/api/faces/src/trash", json=body, headers={"Origin": "http://testserver"})
    assert ok.status_code == 200 and ok.json()["moved"] == ["000001_0.jpg"]
    assert c.get("/api/state").headers["x-frame-options"] == "DENY"


def test_every_route_needs_the_token(web_ws):
    """Each route of the app (new ones included) refuses a request without the token, and one with a wrong token."""
    c = make_client(web_ws)
    c.cookies.clear()
    routes = [r for r in c.app.routes if getattr(r, "path", "").startswith(("/api/", "/static/"))]
    assert {"/api/report", "/api/report/summary", "/api/verify", "/api/train/status"} <= {r.path for r in routes}
    for route in routes:
        url = route.path.replace("{side}", "src").replace("{name}", "x.png").replace("{number}", "1")
        url = url.replace("{stage}", "merge")
        for method in sorted(route.methods - {"HEAD"}):
            assert c.request(method, url).status_code == 401, (method, url)
            assert c.request(method, url, headers={"X-Token": "wrong"}).status_code == 403, (method, url)


def test_security_helpers(tmp_path):
    g = security.Guard("abc")
    assert g.token_status(None) == 401 and g.token_status("abd") == 403 and g.token_status("abc") == 200
    assert g.host_ok("localhost:1") and g.host_ok("[::1]:80") and not g.host_ok("127.0.0.1.evil.com")
    assert g.origin_ok("GET", "x", "http://evil", "cross-site")
    assert not g.origin_ok("POST", "127.0.0.1:5", "http://127.0.0.1:6", None)
    assert g.origin_ok("POST", "127.0.0.1:5", "http://127.0.0.1:5", "same-origin")
    (tmp_path / "in").mkdir()
    (tmp_path / "secret").write_text("x")
    (tmp_path / "in" / "link").symlink_to(tmp_path / "secret")
    from fastapi import HTTPException

    for bad in ("../secret", "/etc/passwd", "link"):
        with pytest.raises(HTTPException) as e:
            security.confine(tmp_path / "in", bad)
        assert e.value.status_code == 403
    assert security.confine(tmp_path / "in", "a/b") == (tmp_path / "in" / "a" / "b").resolve()


@pytest.mark.parametrize("url", [
    "/api/file?path=../../../../etc/passwd",
    "/api/file?path=/etc/passwd",
    "/api/faces/src/image/..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/faces/src/thumb/.sort_index.json",
    "/api/frames/dst/image/..%2Fextract.json",
    "/api/train/history/..%2F..%2Fdata_dst%2F000001.png",
    "/api/result/..%2Fresult.mp4",
])
def test_path_traversal_refused(web_ws, url):
    c = make_client(web_ws)
    r = c.get(url)
    assert r.status_code in (403, 404), (url, r.status_code)
    assert b"root:" not in r.content


def test_file_inside_workspace_served(web_ws):
    c = make_client(web_ws)
    r = c.get("/api/file?path=data_dst/000001.png")
    assert r.status_code == 200 and _img(r).shape == (360, 640, 3)
    assert c.get("/api/file?path=data_dst/extract.json").status_code == 404      # not an image or video


def test_upload_reference_limits(web_ws, media, monkeypatch):
    c = make_client(web_ws)
    data = (media / "single_face.jpg").read_bytes()
    r = c.post("/api/upload/reference", files={"file": ("../../me.jpg", data, "image/jpeg")})
    assert r.status_code == 200 and r.json()["path"] == "references/me.jpg"
    assert (web_ws.root / "references" / "me.jpg").read_bytes() == data
    assert c.post("/api/upload/reference", files={"file": ("x.jpg", b"not an image", "image/jpeg")}).status_code == 415
    monkeypatch.setattr(security, "MAX_UPLOAD_BYTES", 1000)
    assert c.post("/api/upload/reference", files={"file": ("big.jpg", data, "image/jpeg")}).status_code == 413
    # the uploaded path is usable as an option, confined to the workspace
    cfg = build_config(SortConfig, {"by": "identity", "reference": "references/me.jpg"}, web_ws)
    assert cfg.reference == str(web_ws.root / "references" / "me.jpg")
    from fastapi import HTTPException

    with pytest.raises(HTTPException):
        build_config(SortConfig, {"reference": "../../etc/passwd"}, web_ws)


# -- workspace page: state, options, jobs ----------------------------------------------------------------------

def test_state_and_options(web_ws):
    c = make_client(web_ws)
    st = c.get("/api/state").json()
    assert st["sides"]["dst"]["frames"] == 5 and st["sides"]["dst"]["faces"] == 4
    assert st["sides"]["src"]["faces"] == 4 and st["sides"]["dst"]["no_face"] == 1
    assert st["model"]["iteration"] == 0 and st["merged"] == 0 and st["results"] == []
    opts = c.get("/api/options").json()
    assert set(opts) >= {"video-extract", "extract", "sort", "train", "merge", "build"}
    by = next(f for f in opts["sort"] if f["name"] == "by")
    from facedouble.choices import SortMethod, values

    assert by["kind"] == "choice" and by["choices"] == list(values(SortMethod)) and by["default"] == "blur"
    erode = next(f for f in opts["merge"] if f["name"] == "erode")
    assert (erode["lo"], erode["hi"], erode["kind"]) == (-200, 200, "int") and erode["help"]
    # every field of the dataclass that a form can edit is there, in order (the per-frame ranges have their own
    # route: /api/merge/config with a frame and a scope)
    import dataclasses

    assert [f["name"] for f in opts["merge"]] == [f.name for f in dataclasses.fields(MergeConfig) if f.name != "ranges"]
    assert option_schema(MergeConfig) == opts["merge"]
    # the forms' sections, units and labels come from config.py's field metadata
    train = {f["name"]: f for f in opts["train"]}
    assert [g for g in dict.fromkeys(f["group"] for f in opts["train"])] == \
        ["model shape", "training", "augmentation", "losses", "advanced"]
    assert (train["resolution"]["unit"], train["resolution"]["group"]) == ("px", "model shape")
    assert (train["lr"]["label"], train["gan_power"]["group"]) == ("learning rate", "losses")
    assert train["batch_size"]["label"] == "batch size" and train["autosave_minutes"]["unit"] == "min"
    build = {f["name"]: f for f in opts["build"]}
    assert build["bitrate"]["unit"] == "Mbit/s" and build["bitrate"]["group"] == "options"
    assert build["input_dir"]["group"] == "advanced"                  # not asked by the CLI: folded away


def test_build_config_validates():
    from facedouble.errors import OptionError
    from facedouble.workspace import Workspace

    ws = Workspace("/tmp")
    cfg = build_config(MergeConfig, {"mode": "overlay", "erode": "12", "masked_hist_match": "false", "model": ""}, ws)
    assert cfg.mode == "overlay" and cfg.erode == 12 and cfg.masked_hist_match is False and cfg.model is None
    for bad in ({"erode": 999}, {"mode": "nope"}, {"erode": "x"}, {"unknown": 1}):
        with pytest.raises(OptionError):
            build_config(MergeConfig, bad, ws)


def test_job_sort_progress_log_and_busy(web_ws):
    c = make_client(web_ws)
    assert c.get("/api/job").json()["job"] is None
    bad = c.post("/api/jobs", json={"stage": "sort", "side": "src", "options": {"by": "nope"}})
    assert bad.status_code == 400 and "--by" in bad.json()["detail"]
    assert c.post("/api/jobs", json={"stage": "sort", "side": "xx"}).status_code == 404
    assert c.post("/api/jobs", json={"stage": "rm -rf"}).status_code == 400
    r = c.post("/api/jobs", json={"stage": "sort", "side": "src", "options": {"by": "brightness"}})
    assert r.status_code == 200
    job = _wait(c)
    assert job["state"] == "done", job
    names = c.get("/api/faces/src").json()["names"]
    assert len(names) == 4 and all(n[:5].isdigit() and n[5] == "_" for n in names)   # renamed in the new order
    assert any(line["text"] for line in c.get("/api/job?since=0").json()["job"]["log"])
    # undo through the faces endpoint
    assert c.post("/api/faces/src/undo").status_code == 200
    assert c.get("/api/faces/src").json()["names"] == [f"{i:06d}_0.jpg" for i in range(1, 5)]
    # sort-undo as a job too: nothing left to undo is a clean failure, not a crash
    c.post("/api/jobs", json={"stage": "sort-undo", "side": "src"})
    assert _wait(c)["state"] in ("done", "failed")


def test_job_cancel_and_one_at_a_time(web_ws, monkeypatch):
    from facedouble.web import app as web_app

    def slow(ws, stage, side, cfg, extra):
        def run(rep):
            with rep.task("waiting", 1000) as advance:
                for _ in range(1000):
                    rep.check()
                    time.sleep(0.01)
                    advance(1)
        return run

    monkeypatch.setattr(web_app, "_stage_runner", slow)
    c = make_client(web_ws)
    assert c.post("/api/jobs", json={"stage": "build"}).status_code == 200
    time.sleep(0.1)
    second = c.post("/api/jobs", json={"stage": "build"})
    assert second.status_code == 409 and "running" in second.json()["detail"]
    prog = c.get("/api/job").json()["job"]["progress"]
    assert prog["task"] == "waiting" and prog["total"] == 1000 and prog["done"] > 0
    assert c.post("/api/job/save").status_code == 409              # not a training
    assert c.post("/api/job/cancel").json()["cancelled"] is True
    job = _wait(c, 10)
    assert job["state"] == "cancelled" and job["progress"]["done"] < 1000


# -- faceset browser ---------------------------------------------------------------------------------------------

def test_faces_list_thumbs_images_info(web_ws):
    c = make_client(web_ws)
    r = c.get("/api/faces/dst").json()
    assert r["count"] == 4 and r["names"][0] == "000001_0.jpg"
    t = c.get("/api/faces/dst/thumb/000001_0.jpg")
    assert t.status_code == 200 and _img(t).shape == (128, 128, 3)
    cached = list((web_ws.root / ".facedouble-cache" / "thumbs" / "dst").glob("*.jpg"))
    assert len(cached) == 1
    assert c.get("/api/faces/dst/thumb/000001_0.jpg").content == t.content     # from the cache
    plain = _img(c.get("/api/faces/dst/image/000001_0.jpg"))
    drawn = _img(c.get("/api/faces/dst/image/000001_0.jpg?landmarks=true"))
    assert plain.shape == drawn.shape == (128, 128, 3)
    assert np.abs(plain.astype(int) - drawn).mean() > 1.0                       # landmarks drawn on it
    info = c.get("/api/faces/dst/info/000001_0.jpg").json()["record"]
    assert info["source_filename"] == "000001.png" and info["size"] == 128
    assert c.get("/api/faces/dst/info/nope.jpg").status_code == 404
    assert c.get("/api/faces/dst?folder=elsewhere").status_code == 404
    assert c.get("/api/faces/both").status_code == 404


def test_trash_restore_undo(web_ws):
    c = make_client(web_ws)
    r = c.post("/api/faces/src/trash", json={"names": ["000002_0.jpg", "000003_0.jpg", "missing.jpg"]}).json()
    assert r["moved"] == ["000002_0.jpg", "000003_0.jpg"] and r["missing"] == ["missing.jpg"]
    assert c.get("/api/faces/src?folder=trash").json()["names"] == ["000002_0.jpg", "000003_0.jpg"]
    assert c.get("/api/faces/src").json()["count"] == 2
    assert c.get("/api/faces/src/thumb/000002_0.jpg?folder=trash").status_code == 200
    r = c.post("/api/faces/src/restore", json={"names": ["000002_0.jpg"]}).json()
    assert r["moved"] == ["000002_0.jpg"] and c.get("/api/faces/src").json()["count"] == 3
    # both moves are journalled like a sort: undo restores step by step
    c.post("/api/faces/src/undo")
    assert c.get("/api/faces/src").json()["count"] == 2
    c.post("/api/faces/src/undo")
    assert c.get("/api/faces/src").json()["count"] == 4 and not any(web_ws.aligned_trash("src").iterdir())
    assert c.post("/api/faces/src/trash", json={"names": ["../000001.png"]}).status_code == 403


def test_face_list_and_thumb_speed_at_10000(tmp_path):
    """10,000 faces: the list answers fast (names only, no decoding), thumbnails are made once and cached."""
    from facedouble.workspace import Workspace

    ws = Workspace(tmp_path / "big").create()
    face = cv2.imencode(".jpg", np.full((256, 256, 3), 128, np.uint8))[1].tobytes()
    for i in range(10_000):
        (ws.aligned("src") / f"{i:06d}_0.jpg").write_bytes(face)
    c = make_client(ws)
    t0 = time.perf_counter()
    r = c.get("/api/faces/src").json()
    listed = time.perf_counter() - t0
    assert r["count"] == 10_000 and listed < 1.0, listed
    t0 = time.perf_counter()
    for i in range(0, 10_000, 500):
        assert c.get(f"/api/faces/src/thumb/{i:06d}_0.jpg").status_code == 200
    first = (time.perf_counter() - t0) / 20
    assert first < 0.1, first


# -- frames and the manual extraction editor ---------------------------------------------------------------------

def test_frames_and_manual_extraction(web_ws):
    c = make_client(web_ws)
    fr = c.get("/api/frames/dst").json()
    assert len(fr["frames"]) == 5 and fr["no_face"] == ["000005.png"] and fr["deleted_debug"] == []
    img = _img(c.get("/api/frames/dst/image/000001.png"))
    assert img.shape == (360, 640, 3)
    faces = c.get("/api/frames/dst/faces/000001.png").json()["faces"]
    assert len(faces) == 1 and len(faces[0]["landmarks"]) == 68
    rect = faces[0]["rect"]
    lm = c.post("/api/manual/dst/landmarks", json={"frame": "000001.png", "rect": rect}).json()["landmarks"]
    lm = np.asarray(lm)
    assert lm.shape == (68, 2)
    assert np.abs(lm - np.asarray(faces[0]["landmarks"])).mean() < 15      # near the detector's landmarks
    moved = [r + 40 for r in rect]
    lm2 = np.asarray(c.post("/api/manual/dst/landmarks", json={"frame": "000001.png", "rect": moved}).json()["landmarks"])
    assert lm2.mean(0)[0] > lm.mean(0)[0] + 10                              # they follow the rectangle
    assert c.post("/api/manual/dst/landmarks", json={"frame": "000001.png", "rect": [1, 2]}).status_code == 400
    assert c.post("/api/manual/dst/landmarks", json={"frame": "000001.png", "rect": [5, 5, 4, 4]}).status_code == 400
    # confirm a rectangle on the frame without a face
    r = c.post("/api/manual/dst/confirm", json={"frame": "000005.png", "rect": [300, 100, 420, 240]})
    assert r.status_code == 200 and r.json()["face"] == "000005_0.jpg"
    assert (web_ws.aligned("dst") / "000005_0.jpg").is_file()
    fr = c.get("/api/frames/dst").json()
    assert fr["no_face"] == []
    assert json.loads((web_ws.frames("dst") / "manual_fix.json").read_text())["frames"] == []
    assert c.post("/api/manual/dst/confirm", json={"frame": "../x.png", "rect": rect}).status_code == 403


def test_manual_fix_deleted_job(web_ws):
    c = make_client(web_ws)
    saved = c.get("/api/saved/extract?side=dst").json()
    assert saved["saved"] and saved["options"]["size"] == 128        # forms start from the saved options
    assert c.get("/api/saved/merge").json()["saved"] is False
    (web_ws.aligned_debug("dst") / "000002.jpg").unlink()
    assert c.get("/api/frames/dst").json()["deleted_debug"] == ["000002.png"]
    c.post("/api/jobs", json={"stage": "manual-fix-deleted", "side": "dst", "options": {"detector": "dlib",
                                                                                        "workers": 1}})
    job = _wait(c)
    assert job["state"] == "done", job
    assert (web_ws.aligned_debug("dst") / "000002.jpg").is_file()
    assert c.get("/api/frames/dst").json()["deleted_debug"] == []


# -- training monitor -------------------------------------------------------------------------------------------

def test_training_monitor_files(web_ws):
    c = make_client(web_ws)
    st = c.get("/api/train/status").json()
    assert st["names"] == [] and c.get("/api/train/preview").status_code == 404
    # the training form's values: the preset's while there is no model (seed drawn at the start) ...
    from facedouble.config import TrainConfig
    from facedouble.train.models.registry import preset

    default = TrainConfig().model
    new = c.get("/api/train/options").json()
    assert (new["model"], new["existing"], new["values"]["resolution"], new["values"]["seed"]) == \
        (default, False, preset(default)["resolution"], None)
    assert new["values"]["batch_size"] == preset(default).get("batch_size", new["values"]["batch_size"])
    train_tiny(web_ws)
    # ... and the model's own once it exists
    cur = c.get("/api/train/options").json()
    assert (cur["model"], cur["existing"]) == ("sae", True)
    assert (cur["values"]["resolution"], cur["values"]["ae_dims"], cur["values"]["batch_size"]) == (64, 32, 2)
    assert isinstance(cur["values"]["seed"], int)
    st = c.get("/api/train/status").json()
    assert st["name"] == "sae" and st["iteration"] == 2 and st["training"] is False
    assert len(st["loss"]["src"]) == 2 and st["history"] == ["sae_00000001.png", "sae_00000002.png"]
    assert _img(c.get("/api/train/preview")).shape[0] > 64
    assert _img(c.get("/api/train/loss")).shape[0] > 64
    assert _img(c.get("/api/train/history/sae_00000001.png")).shape[0] > 64
    assert c.get("/api/train/history/nope.png").status_code == 404
    assert c.get("/api/state").json()["model"]["iteration"] == 2
    curve = c.get("/api/train/status").json()["identity"]              # the trainer's identity of its previews
    assert curve and set(curve[-1]) == {"iteration", "nearer_src", "same_as_src", "mean_src", "mean_dst"}
    assert curve[-1]["iteration"] == 2


def _fake_model(ws, name="sae"):
    """Just enough of a model for the training monitor to list it (an options file and a checkpoint)."""
    (ws.model / f"{name}_options.json").write_text("{}")
    (ws.model / f"{name}.safetensors").write_bytes(b"")


def test_train_status_identity_curve(web_ws):
    c = make_client(web_ws)
    assert c.get("/api/train/status").json()["identity"] == []           # no model
    _fake_model(web_ws)
    assert c.get("/api/train/status").json()["identity"] == []           # a model, no identity log yet
    log = web_ws.model / "sae_identity.json"
    log.write_text("not json")
    assert c.get("/api/train/status").json()["identity"] == []           # unreadable: no curve, no error
    entries = [{"iteration": 20, "nearer_src": 0.75, "same_as_src": 0.5, "mean_src": 0.58, "mean_dst": 0.66},
               {"iteration": 10, "nearer_src": 0.25, "same_as_src": 0.0, "mean_src": 0.71, "mean_dst": float("nan")},
               {"iteration": "x"}, "junk", {"iteration": 30, "nearer_src": True}]
    log.write_text(json.dumps(entries))                                    # NaN as the trainer's json writes it
    st = c.get("/api/train/status")
    assert st.status_code == 200
    curve = st.json()["identity"]
    assert [e["iteration"] for e in curve] == [10, 20, 30]                 # oldest first, junk left out
    assert curve[0] == {"iteration": 10, "nearer_src": 0.25, "same_as_src": 0.0, "mean_src": 0.71, "mean_dst": None}
    assert curve[1]["mean_src"] == 0.58 and curve[2]["nearer_src"] is None
    long = [{"iteration": i, "nearer_src": 0.5, "same_as_src": 0.5, "mean_src": 0.6, "mean_dst": 0.7} for i in range(2500)]
    log.write_text(json.dumps(long))
    curve = c.get("/api/train/status").json()["identity"]
    assert 800 <= len(curve) <= 1001 and curve[0]["iteration"] == 0 and curve[-1]["iteration"] == 2499
    outside = web_ws.root.parent / "elsewhere.json"
    outside.write_text(json.dumps(entries[:1]))
    log.unlink()
    log.symlink_to(outside)
    assert c.get("/api/train/status").json()["identity"] == []           # a link out of the workspace is not read


def test_train_job_save_and_stop(web_ws):
    train_tiny(web_ws)
    c = make_client(web_ws)
    r = c.post("/api/jobs", json={"stage": "train", "options": {"model": "sae", "device": "cpu", "amp": False,
                                                                "workers": 0, "threads": 1, "preview_every": 0},
                                  "extra": {"max_iterations": 400}})
    assert r.status_code == 200, r.text
    end = time.monotonic() + 60
    while c.get("/api/train/status").json()["rate"] is None and time.monotonic() < end:
        time.sleep(0.2)
    st = c.get("/api/train/status").json()
    assert st["training"] and st["rate"] > 0 and "iter" in st["status"]
    assert c.post("/api/job/save").status_code == 200
    end = time.monotonic() + 30
    while c.get("/api/train/status").json()["iteration"] <= 2 and time.monotonic() < end:
        time.sleep(0.2)
    assert c.get("/api/train/status").json()["iteration"] > 2          # saved while running
    c.post("/api/job/cancel")
    job = _wait(c, 60)
    assert job["state"] == "cancelled" and "saved" in job["message"]


# -- merge tuner, result video -----------------------------------------------------------------------------------

def test_merge_tuner_preview_is_fast_marked_and_follows_options(web_ws):
    from facedouble.provenance import watermark

    c = make_client(web_ws)
    fr = c.get("/api/merge/frames").json()
    assert fr["numbers"] == [1, 2, 3, 4, 5] and fr["with_face"] == [1, 2, 3, 4]
    r1 = fr["rects"]["1"]                                            # the face the tuner zooms on
    assert sorted(fr["rects"]) == ["1", "2", "3", "4"] and r1[2] > r1[0] + 20 and r1[3] > r1[1] + 20
    orig = _img(c.get("/api/merge/original/1"))
    base = {"mode": "overlay", "mask": "dst", "smooth_frames": 0}
    r = c.post("/api/merge/preview", json={"frame": 1, "options": base})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    a = _img(r)
    assert a.shape == orig.shape
    t0 = time.perf_counter()
    b = _img(c.post("/api/merge/preview", json={"frame": 1, "options": {**base, "degrade_color": 80}}))
    assert time.perf_counter() - t0 < 1.0                                  # the model output is cached
    assert np.abs(a.astype(int) - b).mean() > 1.0                          # the option changed the image
    raw = _img(c.post("/api/merge/preview", json={"frame": 1, "options": {**base, "mode": "raw", "raw": "mask"}}))
    assert np.abs(raw.astype(int) - a).mean() > 5.0
    found = watermark.detect(cv2.cvtColor(a, cv2.COLOR_BGR2RGB), search=False)
    assert found.found                                                     # an output: marked as AI-generated
    assert c.post("/api/merge/preview", json={"frame": 99, "options": base}).status_code == 400
    assert c.post("/api/merge/preview", json={"frame": 1, "options": {"erode": 1000}}).status_code == 400


def test_merge_tuner_without_model_says_train_first(web_ws):
    from facedouble.merge.merger import load_swapper

    c = make_client(web_ws, swapper_factory=load_swapper)
    r = c.post("/api/merge/preview", json={"frame": 1, "options": {}})
    assert r.status_code == 409 and "train" in r.json()["detail"].lower()


def test_merge_config_save_merge_build_and_play(web_ws, monkeypatch, media):
    from facedouble.merge import merger
    from support.swappers import identity_factory

    c = make_client(web_ws)
    assert c.get("/api/merge/config").json()["saved"] is False
    r = c.post("/api/merge/config", json={"options": {"mode": "overlay", "mask": "dst", "erode": 5}})
    assert r.status_code == 200
    assert MergeConfig.load(web_ws.frames("dst") / "merge_config.json") == MergeConfig(mode="overlay", mask="dst", erode=5)
    assert c.get("/api/merge/config").json()["options"]["erode"] == 5
    monkeypatch.setattr(merger, "load_swapper", identity_factory)
    c.post("/api/jobs", json={"stage": "merge", "options": {"mode": "overlay", "mask": "dst"}})
    job = _wait(c)
    assert job["state"] == "done", job
    assert c.get("/api/state").json()["merged"] == 5
    # dst video for the build's timing
    import shutil

    shutil.copy(media / "single_face.mp4", web_ws.root / "data_dst.mp4")
    c.post("/api/jobs", json={"stage": "build", "options": {}})
    job = _wait(c)
    assert job["state"] == "done", job
    assert [r["name"] for r in c.get("/api/state").json()["results"]] == ["result.mp4"]
    full = c.get("/api/result/result.mp4")
    size = len(full.content)
    assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes" and size > 1000
    part = c.get("/api/result/result.mp4", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == full.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    tail = c.get("/api/result/result.mp4", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == full.content[-50:]
    assert c.get("/api/result/result.mp4", headers={"Range": f"bytes={size + 5}-"}).status_code == 416
    assert c.get("/api/result/data_dst.mp4").status_code == 404
    v = c.post("/api/verify", json={"path": "result.mp4"})
    assert v.status_code == 200 and v.json()["path"] == "result.mp4"
    assert c.post("/api/verify", json={"path": "../../etc/passwd"}).status_code == 403


# -- quality report ----------------------------------------------------------------------------------------------

REPORT_HTML = "<!doctype html><html><head><title>facedouble quality report</title><style>h1{color:red}</style>" \
              "</head><body><h1>Report</h1></body></html>"
CHECKS = [
    {"name": "identity retrieval (share of faces nearer src than dst)", "value": 0.95, "target": 0.9, "op": ">=",
     "pass": True, "unit": "", "note": ""},
    {"name": "flicker inside the face, relative to dst", "value": 1.3, "target": 1.1, "op": "<=", "pass": False,
     "unit": "", "note": ""},
    {"name": "background PSNR outside the face", "value": float("nan"), "target": 45.0, "op": ">=", "pass": None,
     "unit": "dB", "note": "100 dB means identical"},
]


def _write_report(ws, summary=None) -> None:
    folder = ws.root / "report"
    folder.mkdir(exist_ok=True)
    (folder / "report.html").write_text(REPORT_HTML, encoding="utf-8")
    summary = summary if summary is not None else {
        "pass": False, "checks": CHECKS,
        "identity": {"n": 4, "nearer_src": 0.95, "same_as_src": 0.75, "mean_src": 0.5, "mean_dst": float("nan"),
                     "target_nearer_src": 0.9, "same_person_threshold": 0.6},
        "detail": {"ratio_to_dst_median": 0.9}, "expression_pose": {"landmark_error_mean": 0.02},
        "temporal": {"flicker_ratio": 1.3}, "blending": {"background_psnr_db": None}, "coverage": {"frames_scored": 4}}
    data = {"version": 1, "created": "2025-01-02 03:04:05", "coverage_text": "4 of 4 frames scored",
            "summary": summary, "notes": ["a note"], "frames": [{"number": 1}]}
    (folder / "report.json").write_text(json.dumps(data), encoding="utf-8")     # NaN as Python writes it


def test_report_missing_says_so(web_ws):
    c = make_client(web_ws)
    for url in ("/api/report", "/api/report/summary"):
        r = c.get(url)
        assert r.status_code == 404 and "No quality report yet" in r.json()["detail"], url
        assert "report stage" in r.json()["detail"]


def test_report_page_and_summary(web_ws):
    _write_report(web_ws)
    c = make_client(web_ws)
    page = c.get("/api/report")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text == REPORT_HTML
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp   # no script may run
    assert page.headers["x-frame-options"] == "DENY"
    s = c.get("/api/report/summary")
    assert s.status_code == 200
    body = s.json()
    assert body["created"] == "2025-01-02 03:04:05" and body["coverage"] == "4 of 4 frames scored" and body["html"]
    assert body["notes"] == ["a note"] and "frames" not in body and body["version"]
    summary = body["summary"]
    assert summary["pass"] is False
    assert [ch["pass"] for ch in summary["checks"]] == [True, False, None]
    assert summary["checks"][2]["value"] is None                        # nan -> null (strict JSON)
    assert summary["identity"]["nearer_src"] == 0.95 and summary["identity"]["mean_dst"] is None
    assert summary["detail"]["ratio_to_dst_median"] == 0.9 and summary["temporal"]["flicker_ratio"] == 1.3
    assert summary["expression_pose"]["landmark_error_mean"] == 0.02
    # the token rules hold for both
    c.cookies.clear()
    for url in ("/api/report", "/api/report/summary"):
        assert c.get(url).status_code == 401
        assert c.get(url, headers={"X-Token": "wrong"}).status_code == 403
        assert c.get(url, headers={"X-Token": TOKEN, "Host": "evil.example"}).status_code == 403


def test_report_unreadable_and_outside_refused(web_ws, tmp_path):
    _write_report(web_ws)
    c = make_client(web_ws)
    (web_ws.root / "report" / "report.json").write_text("{not json")
    r = c.get("/api/report/summary")
    assert r.status_code == 409 and "cannot be read" in r.json()["detail"]
    _write_report(web_ws, summary={"checks": "nope"})
    r = c.get("/api/report/summary")
    assert r.status_code == 409 and "no summary" in r.json()["detail"]
    # a report folder that links out of the workspace is not served
    import shutil

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "report.html").write_text("<p>secret</p>")
    (outside / "report.json").write_text(json.dumps({"summary": {"checks": []}}))
    shutil.rmtree(web_ws.root / "report")
    (web_ws.root / "report").symlink_to(outside)
    for url in ("/api/report", "/api/report/summary"):
        r = c.get(url)
        assert r.status_code == 403 and b"secret" not in r.content, url


def test_report_job_message_names_the_report(web_ws, monkeypatch):
    from facedouble import report as report_pkg
    from facedouble.report.stage import ReportResult

    def fake(ws, cfg, reporter=None):
        _write_report(ws)
        return ReportResult(ws.root / "report" / "report.html", ws.root / "report" / "report.json",
                            {"pass": False, "checks": CHECKS}, 4, 0.1)

    monkeypatch.setattr(report_pkg, "make_report", fake)
    c = make_client(web_ws)
    assert c.post("/api/jobs", json={"stage": "report", "options": {}}).status_code == 200
    job = _wait(c)
    assert job["state"] == "done" and job["message"] == "report written to report/report.html: 1 of 2 checks pass"
    assert c.get("/api/report/summary").status_code == 200


def test_ui_command_help():
    from typer.testing import CliRunner

    from facedouble.cli import app

    r = CliRunner().invoke(app, ["ui", "--help"])
    assert r.exit_code == 0 and "--host" in r.output and "--no-browser" in r.output
    top = CliRunner().invoke(app, ["--help"]).output
    assert " ui " in top
