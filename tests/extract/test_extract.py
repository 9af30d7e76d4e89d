"""The extraction stage on real frames: dst sequences (one smoothed face per frame), src photos (every
face, --reference), manual rectangles and fixes, resume, cancel, errors, and the CLI."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from facedouble.config import ExtractConfig
from facedouble.errors import Cancelled, NoFaceError, OptionError, SafetyError
from facedouble.extract import (extract, extract_with_rect, faces_by_frame, frames_without_faces,
                                manual_fix_deleted)
from facedouble.faces import align, container
from facedouble.progress import Reporter


def decode(video: Path, folder: Path, first: int = 1, last: int = 10**9) -> list[Path]:
    """Frames first..last of a video as 000001.png, ... (PyAV)."""
    import av
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    with av.open(str(video)) as c:
        for i, f in enumerate(c.decode(video=0), 1):
            if i > last:
                break
            if i >= first:
                p = folder / f"{i:06d}.png"
                cv2.imwrite(str(p), f.to_ndarray(format="bgr24"))
                out.append(p)
    return out


@pytest.fixture(scope="module")
def single_face_frames(media, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("single_face_frames")
    decode(media / "single_face.mp4", folder)
    return folder


def fill(ws, side: str, frames: Path | list[Path]) -> None:
    dest = ws.frames(side)
    dest.mkdir(parents=True, exist_ok=True)
    for p in (sorted(frames.iterdir()) if isinstance(frames, Path) else frames):
        shutil.copy(p, dest / p.name)


def test_dst_sequence_one_smoothed_face_per_frame(workspace, single_face_frames):
    fill(workspace, "dst", single_face_frames)
    cfg = ExtractConfig(debug=True, size=256, workers=2)      # 72 frames: worker processes
    s = extract(workspace, "dst", cfg)
    assert (s.frames, s.processed, s.faces_written, s.no_face, s.unreadable) == (72, 72, 72, [], [])
    faces = workspace.face_files("dst")
    assert [p.name for p in faces] == [f"{i:06d}_0.jpg" for i in range(1, 73)]
    assert len(list(workspace.aligned_debug("dst").glob("*.jpg"))) == 72
    saved = json.loads((workspace.frames("dst") / "extract.json").read_text())
    assert saved["options"]["size"] == 256 and saved["options"]["face_type"] == "whole-face"
    lms, idents = [], []
    for p in faces:
        image, rec = container.read_face(p)
        assert image.shape == (256, 256, 3)
        assert rec.face_type == "whole-face" and rec.size == 256 and rec.source_filename == p.stem[:6] + ".png"
        assert rec.source_size == (640, 360) and rec.detector in ("mediapipe", "mt") and rec.landmarker == "dlib68"
        assert rec.identity is not None and rec.identity.shape == (128,)
        assert {"yaw", "pitch", "roll"} <= set(rec.extra) and rec.extra["smoothed"] is True
        # frame -> aligned matrix: aligned landmarks map back onto the frame landmarks within a pixel
        back = align.transform_points(rec.landmarks, align.invert(rec.matrix))
        assert np.abs(back - rec.source_landmarks).max() < 1.0
        x0, y0, x1, y1 = rec.source_rect
        assert x0 < rec.source_landmarks[:, 0].mean() < x1 and y0 < rec.source_landmarks[:, 1].mean() < y1
        lms.append(rec.source_landmarks)
        idents.append(rec.identity)
    lms = np.array(lms, np.float64)
    # the man's nose tip: around (297, 207) in every frame; landmarks move smoothly
    assert np.all(np.abs(lms[:, 30] - [297, 207]).max(1) < 30)
    assert np.linalg.norm(lms[2:] - 2 * lms[1:-1] + lms[:-2], axis=-1).mean() < 1.0
    # one person all along
    assert max(np.linalg.norm(i - idents[0]) for i in idents) < 0.45
    # resume: nothing left to do
    again = extract(workspace, "dst", cfg)
    assert again.processed == 0 and again.skipped == 72 and again.faces_total == 72


def test_src_photos_every_face_grey_and_alpha(workspace, media):
    import cv2

    src = workspace.frames("src")
    src.mkdir(parents=True, exist_ok=True)
    shutil.copy(media / "multi_face.jpg", src / "000001.jpg")
    shutil.copy(media / "single_face.jpg", src / "000002.jpg")
    shutil.copy(media / "Image_with_alpha.png", src / "000003.png")
    shutil.copy(media / "BWPictureHuman.jpg", src / "000004.jpg")   # one channel; its profile face is not found
    (src / "000005.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    s = extract(workspace, "src", ExtractConfig(size=128, workers=1))
    have = faces_by_frame(workspace, "src")
    assert {k: len(v) for k, v in have.items()} == {"000001.jpg": 5, "000002.jpg": 1, "000003.png": 1}
    assert s.unreadable == ["000005.png"] and s.no_face == ["000004.jpg"]
    for p in have["000003.png"]:
        image, rec = container.read_face(p)
        assert image.shape == (128, 128, 3) and rec.source_size == (1524, 1036)
    assert cv2.imread(str(src / "000004.jpg"), cv2.IMREAD_UNCHANGED).ndim == 2
    # faces of one frame are numbered largest first
    sizes = [1 / align.matrix_scale(container.read_record(p).matrix) for p in sorted(have["000001.jpg"])]
    assert sizes == sorted(sizes, reverse=True)
    # no-face frames are remembered: a re-run does not try them again (but still lists the unreadable one)
    again = extract(workspace, "src", ExtractConfig(size=128, workers=1))
    assert again.processed == 1 and again.unreadable == ["000005.png"]
    # max faces
    shutil.rmtree(workspace.aligned("src"))
    (workspace.frames("src") / "extract_state.json").unlink()
    extract(workspace, "src", ExtractConfig(size=128, workers=1, max_faces=2))
    assert len(faces_by_frame(workspace, "src")["000001.jpg"]) == 2


def test_src_reference_keeps_one_person(workspace, media, tmp_path):
    import cv2

    frames = decode(media / "WolfgangLanger_Pexels.mp4", tmp_path / "w", 1, 26)     # the woman
    fill(workspace, "src", frames)
    shutil.copy(media / "single_face.jpg", workspace.frames("src") / "000100.jpg")  # a man
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), cv2.imread(str(tmp_path / "w" / "000020.png")))
    s = extract(workspace, "src", ExtractConfig(size=128, reference=str(ref), workers=2))  # 27 frames: workers
    assert s.faces_written == 26 and s.others == 1
    have = faces_by_frame(workspace, "src")
    assert "000100.jpg" not in have and len(have) == 26
    for p in workspace.face_files("src"):
        rec = container.read_record(p)
        assert rec.extra["reference_distance"] < 0.6
        assert rec.extra["identity_from"].endswith(".png")


def test_manual_rects_and_extract_with_rect(workspace, single_face_frames, tmp_path):
    fill(workspace, "dst", [single_face_frames / "000001.png", single_face_frames / "000002.png"])
    rects = tmp_path / "rects.json"
    rects.write_text(json.dumps({"000001.png": [[214, 133, 373, 304]]}))
    s = extract(workspace, "dst", ExtractConfig(detector="manual", rects=str(rects), size=128, debug=True))
    assert s.processed == 1 and s.faces_written == 1 and s.skipped == 1
    rec = container.read_record(workspace.aligned("dst") / "000001_0.jpg")
    assert rec.detector == "manual" and np.abs(rec.source_landmarks[30] - [297, 207]).max() < 30
    # the UI's call: one frame, one rectangle
    path = extract_with_rect(workspace, "dst", "000002.png", [210, 130, 375, 305], ExtractConfig(size=128))
    assert path.name == "000002_0.jpg"
    rec = container.read_record(path)
    assert rec.detector == "manual" and rec.extra["manual"] is True and rec.identity is not None
    assert (workspace.aligned_debug("dst") / "000002.jpg").exists()
    assert frames_without_faces(workspace, "dst") == []
    with pytest.raises(OptionError):
        extract(workspace, "dst", ExtractConfig(detector="manual"))


def test_manual_fix_lists_frames_without_face_and_redoes_deleted_debug(workspace, media, tmp_path):
    frames = decode(media / "face_noface.mov", tmp_path / "f", 66, 80)   # the man, then the title
    fill(workspace, "dst", frames)
    s = extract(workspace, "dst", ExtractConfig(size=128, debug=True, manual_fix=True, workers=1))
    fix = json.loads((workspace.frames("dst") / "manual_fix.json").read_text())
    have = faces_by_frame(workspace, "dst")
    assert fix["frames"] == s.no_face and len(fix["frames"]) == 15 - len(have)
    assert set(have) == {f"{i:06d}.png" for i in range(66, 73)}           # frames 66-72 show the man
    assert len(list(workspace.aligned_debug("dst").glob("*.jpg"))) == 15   # every frame, face or not
    # the user deletes two debug images: those frames are extracted again, the old faces go to the trash
    for n in ("000068", "000070"):
        (workspace.aligned_debug("dst") / f"{n}.jpg").unlink()
    before = (workspace.aligned("dst") / "000068_0.jpg").read_bytes()
    rects = tmp_path / "rects.json"
    rects.write_text(json.dumps({"000070.png": [[300, 130, 560, 430]]}))
    s2 = manual_fix_deleted(workspace, "dst", ExtractConfig(size=128, rects=str(rects), workers=1))
    assert s2.processed == 2 and s2.faces_written == 2
    assert (workspace.aligned_trash("dst") / "000068_0.jpg").read_bytes() == before
    assert container.read_record(workspace.aligned("dst") / "000070_0.jpg").detector == "manual"
    assert (workspace.aligned_debug("dst") / "000068.jpg").exists()


def test_no_face_anywhere_suggests_another_detector(workspace, media, tmp_path):
    fill(workspace, "dst", decode(media / "no_face.mp4", tmp_path / "n", 1, 4))
    with pytest.raises(NoFaceError, match="try another detector"):
        extract(workspace, "dst", ExtractConfig(workers=1))
    # done-list: the same run again does not look at the frames, but still says so
    with pytest.raises(NoFaceError):
        extract(workspace, "dst", ExtractConfig(workers=1))


class CancelAfter(Reporter):
    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def task(self, description, total):
        from contextlib import contextmanager

        @contextmanager
        def cm():
            def advance(k=1):
                if description.startswith("Extracting faces"):
                    self.n -= k
                    if self.n <= 0:
                        self.cancel()
            yield advance
        return cm()


def test_cancel_keeps_work_and_resumes(workspace, single_face_frames):
    fill(workspace, "dst", sorted(single_face_frames.iterdir())[:12])
    with pytest.raises(Cancelled):
        extract(workspace, "dst", ExtractConfig(size=128, workers=1), reporter=CancelAfter(5))
    assert len(workspace.face_files("dst")) == 5
    state = json.loads((workspace.frames("dst") / "extract_state.json").read_text())
    assert len(state["done"]) == 5
    s = extract(workspace, "dst", ExtractConfig(size=128, workers=1))
    assert s.processed == 7 and s.faces_total == 12


def test_options_that_do_not_fit_are_refused(workspace, single_face_frames):
    fill(workspace, "dst", [single_face_frames / "000001.png"])
    extract(workspace, "dst", ExtractConfig(size=128, workers=1))
    with pytest.raises(OptionError, match="--face-type"):
        extract(workspace, "dst", ExtractConfig(size=128, face_type="head", workers=1))
    with pytest.raises(OptionError):
        ExtractConfig(detector="s3fd")


def test_safety_screen_is_called(workspace, single_face_frames, monkeypatch):
    seen = []

    def screen_frames(paths, *, reporter, fps=None):
        seen.extend(paths)
        raise SafetyError("refused")

    monkeypatch.setitem(sys.modules, "facedouble.safety", types.SimpleNamespace(screen_frames=screen_frames))
    fill(workspace, "dst", [single_face_frames / "000001.png"])
    with pytest.raises(SafetyError):
        extract(workspace, "dst", ExtractConfig(workers=1))
    assert [p.name for p in seen] == ["000001.png"] and workspace.face_files("dst") == []


def test_cli_extract(workspace, single_face_frames):
    from typer.testing import CliRunner

    from facedouble.cli import app

    fill(workspace, "dst", sorted(single_face_frames.iterdir())[:3])
    r = CliRunner().invoke(app, ["extract", "dst", "-w", str(workspace.root), "--detector", "mediapipe", "--size", "128",
                                 "--manual-fix", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "3 face(s) written" in r.output and "every frame has a face" in r.output
    r = CliRunner().invoke(app, ["extract", "dst", "-w", str(workspace.root), "--detector", "s3fd"])
    assert r.exit_code == 1 and "--detector must be one of" in r.output


def test_dst_face_leaving_the_frame_is_kept(workspace, single_face_frames, monkeypatch):
    """The man slides out of the left edge: every frame keeps his face while it is detected. Faces the
    verifier turns down (here: made to turn down every face left of x = 170) are kept while they continue the
    target's track, and never start one."""
    import cv2

    from facedouble.faces.mtcnn import FaceVerifier

    real = FaceVerifier.__call__

    def picky(self, image, landmarks):
        return min(real(self, image, landmarks), 0.9) if landmarks[30, 0] < 170 else real(self, image, landmarks)

    monkeypatch.setattr(FaceVerifier, "__call__", picky)
    frame = cv2.imread(str(single_face_frames / "000001.png"))
    dst = workspace.frames("dst")
    dst.mkdir(parents=True, exist_ok=True)
    shifts = np.linspace(0, 260, 10)          # face x 214..373: at 260 px about half of it is left
    for i, sh in enumerate(shifts, 1):
        m = np.float32([[1, 0, -sh], [0, 1, 0]])
        cv2.imwrite(str(dst / f"{i:06d}.png"), cv2.warpAffine(frame, m, (640, 360), borderValue=(0, 0, 0)))
    s = extract(workspace, "dst", ExtractConfig(size=128, workers=1))
    assert s.no_face == [] and s.faces_written == 10
    recs = [container.read_record(workspace.aligned("dst") / f"{i:06d}_0.jpg") for i in range(1, 11)]
    nose = np.array([r.source_landmarks[30, 0] for r in recs])
    assert np.abs(nose - (297 - shifts)).max() < 25
    kept = ["verified" in r.extra for r in recs]
    assert kept[0] is False and kept[-1] is True            # the last ones only by continuing the track
    # faces the verifier turns down do not start a track
    monkeypatch.setattr(FaceVerifier, "__call__", lambda self, image, landmarks: 0.9)
    shutil.rmtree(workspace.aligned("dst"))
    (workspace.frames("dst") / "extract_state.json").unlink()
    for p in sorted(dst.glob("*.png"))[2:]:
        p.unlink()
    with pytest.raises(NoFaceError):
        extract(workspace, "dst", ExtractConfig(size=128, workers=1))
