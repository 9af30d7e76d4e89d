"""Likeness of faces to a person (pure functions plus dlib's identity model): identity centroids of a faceset,
and how much aligned face crops (the model's dst->src previews, merged faces) look like src rather than dst.
Shared by the trainer (identity beside the loss) and the quality report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import MetadataError, NoFaceError
from . import align
from .identity import SAME_PERSON, face_distance


def robust_centroid(embeddings: Sequence[np.ndarray] | np.ndarray, threshold: float = SAME_PERSON) -> np.ndarray:
    """Mean of the 128-d embeddings that lie within `threshold` of their coordinate-wise median (so a few
    faces of someone else in a faceset do not pull it); all of them when fewer than half would be kept."""
    e = np.asarray(list(embeddings), np.float32)
    if e.ndim == 1 and e.size:
        e = e[None]
    if e.size == 0:
        raise ValueError("no embeddings to average")
    d = np.linalg.norm(e - np.median(e, axis=0), axis=1)
    keep = d < threshold
    if keep.sum() * 2 >= len(e):
        e = e[keep]
    return e.mean(0).astype(np.float32)


def identity_summary(d_src: Sequence[float], d_dst: Sequence[float], threshold: float = SAME_PERSON) -> dict[str, Any]:
    """Identity figures from per-face distances to the src and dst centroids.

    Returns n (faces measured), nearer_src (share of faces nearer src than dst: identity retrieval),
    same_as_src (share within `threshold` of src: dlib's same-person test), mean_src, mean_dst (mean
    distances); shares and means are nan when n is 0."""
    a = np.asarray([x for x, y in zip(d_src, d_dst) if np.isfinite(x) and np.isfinite(y)], np.float64)
    b = np.asarray([y for x, y in zip(d_src, d_dst) if np.isfinite(x) and np.isfinite(y)], np.float64)
    n = len(a)
    nan = float("nan")
    return {
        "n": n,
        "nearer_src": float(np.mean(a < b)) if n else nan,
        "same_as_src": float(np.mean(a < threshold)) if n else nan,
        "mean_src": float(a.mean()) if n else nan,
        "mean_dst": float(b.mean()) if n else nan,
    }


def _template_box(face_type: str, size: int) -> np.ndarray:
    """The HOG-like face box (x0, y0, x1, y1) of an aligned `face_type` crop of `size` pixels, from where the
    alignment template puts the face (faces/align.py, faces/landmarks.py HOG_FROM_UNIT)."""
    from ..faces.landmarks import HOG_FROM_UNIT

    def unit_to_px(ft: str, s: float) -> np.ndarray:
        cx, cy, side = align.FACE_TYPE_BOX[ft]
        k = s / side
        return np.array([[k, 0, -(cx - side / 2) * k], [0, k, -(cy - side / 2) * k]])

    # HOG_FROM_UNIT is given in the 1-pixel "full" crop; map it through the template's unit square
    to_crop = align.compose(unit_to_px(face_type, size), align.invert(unit_to_px("full", 1.0)))
    centre = align.transform_points(np.array([HOG_FROM_UNIT[:2]]), to_crop)[0]
    half = HOG_FROM_UNIT[2] * align.matrix_scale(to_crop) / 2
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half], np.float32)


def aligned_face_landmarks(face: np.ndarray, face_type: str = "whole-face") -> tuple[np.ndarray, np.ndarray]:
    """(padded image, 68 landmarks in it) of an aligned face crop (RGB uint8, any size). The crop is padded
    by half its side (edges repeated) so that the identity chip, which reaches 25% beyond the face, stays
    inside the picture."""
    import cv2

    from ..faces.landmarks import default_landmarker

    img = np.ascontiguousarray(np.asarray(face, np.uint8)[..., :3])
    size = img.shape[0]
    pad = size // 2
    padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    box = _template_box(face_type, size) + pad
    return padded, default_landmarker()(padded, box, "dlib")


def identity_score(pred_faces: Sequence[np.ndarray], src_centroid: np.ndarray, dst_centroid: np.ndarray, *,
                   face_type: str = "whole-face") -> dict:
    """How much faces predicted by the model (e.g. the dst->src column of the training preview) look like src.

    Args:
        pred_faces: aligned face crops, RGB uint8 (res, res, 3), of the model's `face_type` (the face sits
            where the alignment template puts it, so no detector is needed).
        src_centroid, dst_centroid: (128,) mean identity embeddings (`centroid_from_records`).
        face_type: the model's face type.

    Returns:
        {"n": faces given, "nearer_src": share nearer the src centroid than the dst one (identity retrieval),
        "same_as_src": share within dlib's same-person distance 0.6 of src, "mean_src", "mean_dst": mean
        distances, "distances": [[to src, to dst], ...]}. About 0.1-0.25 s per face on one CPU core.
    """
    from ..faces.identity import default_encoder

    enc = default_encoder()
    d_src, d_dst = [], []
    for face in pred_faces:
        padded, lm = aligned_face_landmarks(face, face_type)
        e = enc(padded, lm)
        d_src.append(face_distance(e, src_centroid))
        d_dst.append(face_distance(e, dst_centroid))
    out = identity_summary(d_src, d_dst)
    return out | {"distances": [[round(a, 4), round(b, 4)] for a, b in zip(d_src, d_dst)]}


def _face_files(folder: Path) -> list[Path]:
    from ..workspace import IMAGE_SUFFIXES

    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _spread(items: list, limit: int | None) -> list:
    if limit is None or len(items) <= limit:
        return list(items)
    idx = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in idx]


def record_embeddings(folder: str | Path, *, compute_limit: int = 32) -> tuple[list[np.ndarray], int]:
    """Identity embeddings of the aligned faces in `folder`: the ones stored in their records
    (FaceRecord.identity); when none has one, computed from up to `compute_limit` faces spread over the
    folder, using the landmarks in the record. Returns (embeddings, files with a record)."""
    from ..faces.container import read_face, read_record

    files = _face_files(Path(folder))
    stored, recorded = [], []
    for p in files:
        try:
            rec = read_record(p)
        except (MetadataError, OSError):
            continue
        if rec is None:
            continue
        recorded.append(p)
        if rec.identity is not None:
            stored.append(np.asarray(rec.identity, np.float32))
    if stored:
        return stored, len(recorded)
    from ..faces.identity import default_encoder

    enc = default_encoder()
    out = []
    for p in _spread(recorded, compute_limit):
        try:
            image, rec = read_face(p)
        except (MetadataError, OSError):
            continue
        out.append(enc(image, rec.landmarks))
    return out, len(recorded)


def centroid_from_records(folder: str | Path, *, compute_limit: int = 32) -> np.ndarray:
    """(128,) float32 identity centroid of the aligned faces in `folder` (e.g. workspace/data_src/aligned).

    Uses the embeddings stored in the faces' records (the extraction stores them); when none has one,
    computes them for up to `compute_limit` faces. Faces farther than 0.6 from the median are left out
    when they are a minority (another person in the faceset). NoFaceError if there is no aligned face."""
    emb, _ = record_embeddings(folder, compute_limit=compute_limit)
    if not emb:
        raise NoFaceError(f"No aligned face with a facedouble record in {folder}; run `facedouble extract` first.")
    return robust_centroid(emb)
