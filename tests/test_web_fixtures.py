"""Helpers for the web UI tests (no tests here): a small real workspace made with the extraction stage,
a tiny trained model, and the app with a stand-in merge model."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

TOKEN = "test-token-0123456789"
CHROMIUM = Path("/usr/bin/chromium")      # Debian's chromium: the browser tests never download one
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover
    sync_playwright = None
N_FACE_FRAMES = 4            # frames of single_face.mp4 (a face each); one more frame from no_face.mp4 (no face)


def decode(path: Path, picks: list[int], size: tuple[int, int] = (640, 360)) -> list[np.ndarray]:
    import av
    import cv2

    out = []
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in picks:
                img = frame.to_ndarray(format="rgb24")
                if (img.shape[1], img.shape[0]) != size:
                    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                out.append(img)
            if i >= max(picks):
                break
    return out


def make_workspace(root: Path, media: Path):
    """data_src and data_dst frames (4 with the man's face; dst has a 5th frame with no face), extracted
    with the real extraction stage (dlib, 128 px faces, debug images, manual_fix.json)."""
    import cv2

    from facedouble.config import ExtractConfig
    from facedouble.extract import extract
    from facedouble.workspace import Workspace

    ws = Workspace(root).create()
    faces = decode(media / "single_face.mp4", [0, 20, 40, 60])
    empty = decode(media / "no_face.mp4", [30])
    for side, frames in (("src", faces), ("dst", faces + empty)):
        for i, img in enumerate(frames, start=1):
            cv2.imwrite(str(ws.frames(side) / f"{i:06d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cfg = ExtractConfig(detector="dlib", size=128, debug=True, workers=1, manual_fix=True, device="cpu")
    extract(ws, "src", cfg)
    extract(ws, "dst", cfg)
    return ws


def train_tiny(ws) -> None:
    """A tiny model trained for two iterations, with a preview history."""
    from facedouble.config import TrainConfig
    from facedouble.train.trainer import train

    cfg = TrainConfig(model="sae", resolution=64, ae_dims=32, e_dims=8, d_dims=8, d_mask_dims=4, batch_size=2,
                      write_preview_history=True, preview_every=1, device="cpu", amp=False, workers=0, threads=1)
    train(ws, cfg, max_iterations=2)


@pytest.fixture(scope="session")
def web_template(tmp_path_factory, media):
    t0 = time.perf_counter()
    ws = make_workspace(tmp_path_factory.mktemp("web-template") / "ws", media)
    print(f"web workspace made in {time.perf_counter() - t0:.1f} s")
    return ws


@pytest.fixture()
def web_ws(web_template, tmp_path):
    from facedouble.workspace import Workspace

    root = tmp_path / "ws"
    shutil.copytree(web_template.root, root)
    return Workspace(root)


def identity_factory(ws, cfg):
    from facedouble.train.swapper import IdentitySwapper

    return IdentitySwapper(128, "whole-face")


def make_client(ws, **kw):
    from fastapi.testclient import TestClient

    from facedouble.web.app import create_app

    app = create_app(ws.root, token=TOKEN, hosts=("testserver",), swapper_factory=kw.pop("swapper_factory", identity_factory), **kw)
    client = TestClient(app)
    client.cookies.set("facedouble_token", TOKEN)
    return client


def add_result(ws, media: Path) -> str:
    """A real result.mp4: the dst frames marked with the provenance watermark as merged frames, built with the
    build stage (container tag, C2PA) over single_face.mp4 as data_dst.mp4. Returns the run id."""
    import cv2

    from facedouble.config import VideoBuildConfig
    from facedouble.imagefile import read_rgb as read_image
    from facedouble.merge.marking import mark_output, new_run_id
    from facedouble.video.build import build_video

    run_id = new_run_id()
    for p in ws.frame_files("dst"):
        marked = mark_output(read_image(p), run_id)
        cv2.imwrite(str(ws.merged / p.name), cv2.cvtColor(marked, cv2.COLOR_RGB2BGR))
    shutil.copy(media / "single_face.mp4", ws.root / "data_dst.mp4")
    build_video(ws, VideoBuildConfig(), run_id=run_id)
    return run_id


# -- the browser tests' shared set-up -------------------------------------------------------------------------

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
