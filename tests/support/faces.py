"""Faces found with dlib (HOG detector, 68-point predictor, ResNet identity) and aligned the way the extraction
stage aligns them, for tests that must not depend on the extraction stage itself."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

FACE_SIZE = 256      # the aligned whole-face crops of face_from_frame

# 68-point index of each point's mirror image (jaw, brows, nose, eyes, outer and inner mouth).
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)


def predictor_path() -> Path:
    """dlib's 68-point predictor of the face-recognition-models package (located, never imported: it needs
    pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.submodule_search_locations, "face-recognition-models is not installed"
    return Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"


@lru_cache(maxsize=1)
def _dlib():
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path()))


def landmarks(image: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """(68, 2) float32 landmarks and the box of each face dlib's HOG detector finds."""
    det, pred = _dlib()
    out = []
    for r in det(image, 0):
        s = pred(image, r)
        pts = np.array([[p.x, p.y] for p in s.parts()], np.float32)
        out.append((pts, (r.left(), r.top(), r.right(), r.bottom())))
    return out


@dataclass
class Dlib:
    detector: object
    predictor: object
    recognizer: object


def dlib_models() -> Dlib:
    """dlib's detector, 68-point predictor and identity network, from facedouble's own model files."""
    import dlib

    from facedouble.faces.models import DLIB_68, DLIB_RESNET, dlib_model

    return Dlib(dlib.get_frontal_face_detector(), dlib.shape_predictor(str(dlib_model(DLIB_68))),
                dlib.face_recognition_model_v1(str(dlib_model(DLIB_RESNET))))


def face_from_frame(frame: np.ndarray, rect, m: Dlib, source_filename: str, face_index: int = 0,
                    with_identity: bool = True):
    """(aligned RGB image, FaceRecord) of the face in `rect` (a dlib rectangle) of `frame`."""
    from facedouble.faces import align
    from facedouble.faces.container import FaceRecord

    shape = m.predictor(frame, rect)
    lm = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
    mat = align.face_matrix(lm, "whole-face", FACE_SIZE)
    image = align.warp_to_face(frame, mat, FACE_SIZE)
    identity = np.asarray(m.recognizer.compute_face_descriptor(frame, shape), np.float32) if with_identity else None
    rec = FaceRecord(face_type="whole-face", size=FACE_SIZE, landmarks=align.transform_points(lm, mat),
                     source_landmarks=lm, matrix=mat, source_filename=source_filename,
                     source_rect=(rect.left(), rect.top(), rect.right(), rect.bottom()),
                     source_size=(frame.shape[1], frame.shape[0]), face_index=face_index, detector="dlib",
                     landmarker="dlib68", identity=identity)
    return image, rec


def mirrored(image: np.ndarray, record, tag: str = "f"):
    """The face flipped left-right, with landmarks (and their point order) and matrix mirrored too, as a
    face of a virtual frame named `<tag><frame>`."""
    w = image.shape[1]
    flip = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0]])
    lm = record.landmarks[MIRROR_68].copy()
    lm[:, 0] = (w - 1) - lm[:, 0]
    mat = flip @ np.vstack([record.matrix, [0.0, 0.0, 1.0]])
    return np.ascontiguousarray(image[:, ::-1]), replace(record, landmarks=lm.astype(np.float32), matrix=mat,
                                                           source_filename=tag + record.source_filename)
