"""Every path that brings frames or faces in runs the explicit-content screen: automatic extraction,
`extract --detector manual --rects`, the browser UI's manual editor, `util import-dfl`, and a live source
(`StreamScreen`). Each refuses (SafetyError, exit code 3, nothing written) when the screen says explicit (the
detector's answer is replaced, as in tests/test_safety.py) and passes the clean sample media with the real
model. The sampling screens at least one frame per second of footage, however long."""

from __future__ import annotations

import json
import pickle
import shutil
import struct

import av
import cv2
import numpy as np
import pytest

from facedouble import safety
from facedouble.config import ExtractConfig
from facedouble.errors import SafetyError
from facedouble.extract import extract, extract_with_rect
from facedouble.faces import align, dfl, container
from facedouble.video.probe import frames_per_second

RECT = [214, 133, 373, 304]          # the man's face in the first frames of single_face.mp4


def explicit(detections_for=lambda image: True):
    """A stand-in for the detector: an exposed breast at 0.9 where `detections_for(image)` says so."""
    calls = []

    def detect(image):
        calls.append(image.shape)
        if detections_for(image):
            return [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.9, "box": [0, 0, 10, 10]}]
        return [{"class": "FACE_MALE", "score": 0.9, "box": [0, 0, 10, 10]}]

    detect.calls = calls
    return detect


@pytest.fixture(scope="module")
def man_frames(media, tmp_path_factory):
    """The first 3 frames of single_face.mp4 as PNG files."""
    folder = tmp_path_factory.mktemp("man")
    with av.open(str(media / "single_face.mp4")) as c:
        for i, f in enumerate(c.decode(video=0), 1):
            cv2.imwrite(str(folder / f"{i:06d}.png"), f.to_ndarray(format="bgr24"))
            if i == 3:
                break
    return sorted(folder.iterdir())


def fill(ws, side, frames):
    for p in frames:
        shutil.copy(p, ws.frames(side) / p.name)


def nothing_written(ws, side):
    return ws.face_files(side) == [] and not (ws.frames(side) / "extract_state.json").exists()


# -- extraction (automatic and --rects) ---------------------------------------------------------------------

def test_extract_refuses_explicit_frames(workspace, man_frames, monkeypatch):
    fill(workspace, "dst", man_frames)
    monkeypatch.setattr(safety, "detect", explicit())
    with pytest.raises(SafetyError, match="000001.png") as err:
        extract(workspace, "dst", ExtractConfig(workers=1))
    assert err.value.exit_code == 3 and nothing_written(workspace, "dst")


def test_manual_rects_are_screened(workspace, man_frames, tmp_path, monkeypatch):
    fill(workspace, "src", man_frames)
    rects = tmp_path / "rects.json"
    rects.write_text(json.dumps({"000002.png": [RECT]}))
    cfg = ExtractConfig(detector="manual", rects=str(rects), size=128)
    fake = explicit()
    monkeypatch.setattr(safety, "detect", fake)
    with pytest.raises(SafetyError, match="000002.png"):
        extract(workspace, "src", cfg)
    assert len(fake.calls) == 1 and nothing_written(workspace, "src")   # the frame with a rectangle
    monkeypatch.undo()
    s = extract(workspace, "src", cfg)                                   # the real screen passes the man
    assert s.faces_written == 1 and [p.name for p in workspace.face_files("src")] == ["000002_0.jpg"]


def test_cli_manual_rects_refused_with_exit_code_3(workspace, man_frames, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from facedouble.cli import app

    fill(workspace, "dst", man_frames[:1])
    rects = tmp_path / "rects.json"
    rects.write_text(json.dumps({"000001.png": [RECT]}))
    monkeypatch.setattr(safety, "detect", explicit())
    result = CliRunner().invoke(app, ["extract", "dst", "-w", str(workspace.root), "--detector", "manual",
                                      "--rects", str(rects)])
    assert result.exit_code == 3, result.output
    assert "Explicit sexual content" in result.output and "cannot be turned off" in result.output
    assert "Traceback" not in result.output and nothing_written(workspace, "dst")


# -- the browser UI's manual editor (extract_with_rect and its route) ---------------------------------------

def test_extract_with_rect_screens_the_frame(workspace, man_frames, monkeypatch):
    fill(workspace, "dst", man_frames)
    fake = explicit()
    monkeypatch.setattr(safety, "detect", fake)
    with pytest.raises(SafetyError, match="data_dst .*000003.png"):
        extract_with_rect(workspace, "dst", "000003.png", RECT, ExtractConfig(size=128))
    assert len(fake.calls) == 1 and nothing_written(workspace, "dst")
    monkeypatch.undo()
    out = extract_with_rect(workspace, "dst", "000003.png", RECT, ExtractConfig(size=128))
    assert out.name == "000003_0.jpg" and container.read_record(out).extra["manual"] is True


def test_ui_manual_confirm_route_refuses(workspace, man_frames, monkeypatch):
    from support.client import make_client

    fill(workspace, "dst", man_frames[:1])
    c = make_client(workspace)
    monkeypatch.setattr(safety, "detect", explicit())
    r = c.post("/api/manual/dst/confirm", json={"frame": "000001.png", "rect": RECT})
    assert r.status_code == 409 and "Explicit sexual content" in r.json()["detail"]
    assert nothing_written(workspace, "dst")


# -- import of the original tool's faces -------------------------------------------------------------------

@pytest.fixture(scope="module")
def dfl_folder(media, tmp_path_factory):
    """Three faces of the original tool (whole face, 256 px) made from single_face.jpg."""
    from facedouble.faces.find import FaceFinder

    frame = cv2.cvtColor(cv2.imread(str(media / "single_face.jpg")), cv2.COLOR_BGR2RGB)
    lm = FaceFinder("auto").find(frame)[0].landmarks
    m = align.face_matrix(lm, "whole-face", 256)
    face = align.warp_to_face(frame, m, 256)
    info = {"face_type": "whole_face", "landmarks": align.transform_points(lm, m).astype(np.float32),
            "source_filename": "00001.png", "source_rect": (185, 190, 380, 410),
            "source_landmarks": lm.astype(np.float32), "image_to_face_mat": m}
    folder = tmp_path_factory.mktemp("dfl")
    for i in range(3):
        jpg = container.encode_image(np.roll(face, i, axis=1), ".jpg", 95)
        payload = pickle.dumps(info)
        (folder / f"0000{i + 1}_0.jpg").write_bytes(jpg[:2] + b"\xff\xef" + struct.pack(">H", len(payload) + 2)
                                                    + payload + jpg[2:])
    return folder


def test_import_dfl_refuses_explicit_faces_and_writes_nothing(dfl_folder, tmp_path, monkeypatch):
    before = {p.name: p.read_bytes() for p in dfl_folder.iterdir()}
    second = container.decode_image((dfl_folder / "00002_0.jpg").read_bytes())
    fake = explicit(lambda image: np.array_equal(image, second))
    monkeypatch.setattr(safety, "detect", fake)
    out = tmp_path / "aligned"
    with pytest.raises(SafetyError, match="faces 00002_0.jpg") as err:
        dfl.import_dfl(dfl_folder, out, identity=False)
    assert "00001_0.jpg" not in err.value.message and len(fake.calls) == 3   # every face screened
    assert not out.exists() or list(out.iterdir()) == []
    assert {p.name: p.read_bytes() for p in dfl_folder.iterdir()} == before


def test_cli_import_dfl_refused_with_exit_code_3(dfl_folder, workspace, monkeypatch):
    from typer.testing import CliRunner

    from facedouble.cli import app

    monkeypatch.setattr(safety, "detect", explicit())
    result = CliRunner().invoke(app, ["util", "import-dfl", str(dfl_folder), "-w", str(workspace.root),
                                      "--no-identity"])
    assert result.exit_code == 3 and "Explicit sexual content" in result.output
    assert workspace.face_files("src") == []


def test_import_dfl_passes_clean_faces(dfl_folder, workspace):
    res = dfl.import_dfl(dfl_folder, workspace.aligned("src"), identity=False)   # the real screen
    assert len(res.imported) == 3 and res.skipped == []


# -- a live source ---------------------------------------------------------------------------------------------

def test_stream_screen_one_frame_per_second_and_refuses(media, monkeypatch):
    frames = []
    with av.open(str(media / "single_face.mp4")) as c:       # 2.4 s at 30 fps
        for f in c.decode(video=0):
            frames.append((f.to_ndarray(format="rgb24"), float(f.time)))
    screen = safety.StreamScreen("the camera")
    screened = [t for img, t in frames if screen.offer(img, t)]   # the real model: the man passes
    assert [int(t) for t in screened] == [0, 1, 2] and screen.screened == 3
    monkeypatch.setattr(safety, "detect", explicit())
    screen = safety.StreamScreen("the camera")
    with pytest.raises(SafetyError, match="the camera .*at 0.0 s"):
        screen.offer(frames[0][0], frames[0][1])


# -- sampling: at least one frame per second of footage --------------------------------------------------------

def screened_seconds(picked, times):
    return {int(times[i]) for i in picked}


@pytest.mark.parametrize("fps,hours", [(30, 3.0), (23.976, 1.0), (60, 0.5), (1, 2.0), (0.5, 1.0)])
def test_long_sets_are_screened_every_second(fps, hours):
    n = int(hours * 3600 * fps)
    times = np.arange(n) / fps                                           # synthetic timing of n frames
    picked = safety.DEFAULT_POLICY.pick(n, times)
    assert screened_seconds(picked, times) == {int(t) for t in times}    # no second of footage unscreened
    if fps <= 1:
        assert len(picked) == n                                          # low-fps src sets: every frame
    else:
        assert len(picked) <= hours * 3600 + 302                         # and not much more than that
    assert len(safety.DEFAULT_POLICY.pick(n)) >= n // 10                 # unknown timing: every 10th, no cap


def test_frame_times_from_names():
    assert safety.frame_times(["000001.png", "000031.png", "x.png"], 30) == [0.0, 1.0, 2 / 30]
    assert safety.frame_times(["000001.png"], None) is None and safety.frame_times(["000001.png"], 0) is None
    names = [f"{i + 1:06d}.png" for i in range(36_000)]                 # 20 minutes at 30 fps, by name
    assert safety.sample_count(36_000, fps=30) == 1200
    assert safety.frame_times(names, 30)[-1] == pytest.approx(35_999 / 30)


def test_sampling_follows_frame_numbers_of_a_subset():
    """Resumed or manual runs screen a subset of the frames: seconds come from the frame numbers."""
    numbers = list(range(1, 30 * 600, 7))                   # every 7th frame of 10 minutes at 30 fps
    names = [f"{k:06d}.png" for k in numbers]
    times = safety.frame_times(names, 30)
    picked = safety.DEFAULT_POLICY.pick(len(names), times)
    assert screened_seconds(picked, times) == set(range(600))


def test_extraction_screens_every_second_of_low_fps_frames(workspace, man_frames, monkeypatch):
    """100 frames extracted at 2 fps (50 s of footage): the screen sees a frame in each of the 50 seconds
    (the old rule, every 10th frame, saw 11), and finds the explicit frame 57 that every-10th would miss."""
    for k in range(1, 101):
        shutil.copy(man_frames[0], workspace.frames("src") / f"{k:06d}.png")
    (workspace.frames("src") / "video_extract.json").write_text(json.dumps({"options": {"fps": 2.0}}))
    assert frames_per_second(workspace, "src") == 2.0
    seen = []
    real_load = safety._load

    def load(item):
        name, img = real_load(item)
        seen.append(name)
        return name, img

    monkeypatch.setattr(safety, "_load", load)
    monkeypatch.setattr(safety, "detect", explicit(lambda _: seen[-1] == "000057.png"))
    with pytest.raises(SafetyError, match="000057.png"):
        extract(workspace, "src", ExtractConfig(workers=1))
    times = [(int(n[:6]) - 1) / 2.0 for n in seen]
    assert {int(t) for t in times} == set(range(50)) and nothing_written(workspace, "src")


def test_frames_per_second_from_the_workspace(workspace, media):
    assert frames_per_second(workspace, "dst") is None                   # frames put in by hand
    video = workspace.root / "data_dst.mp4"
    shutil.copy(media / "WolfgangLanger_Pexels.mp4", video)
    (workspace.frames("dst") / "video_extract.json").write_text(json.dumps(
        {"options": {"fps": None}, "source": {"name": video.name, "size": video.stat().st_size}}))
    assert frames_per_second(workspace, "dst") == pytest.approx(23.976, abs=0.01)
    (workspace.frames("dst") / "video_extract.json").write_text(json.dumps(
        {"options": {"fps": None}, "source": {"name": "other.mp4", "size": 5}}))
    assert frames_per_second(workspace, "dst") is None                   # frames of another video
