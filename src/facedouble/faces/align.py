"""Alignment geometry (pure): from 68 landmarks to a frame-to-face similarity transform per face type.

Landmarks are (N, 2) float32 (x, y) in pixels, iBUG 68-point order. A transform is a 2x3 float64 matrix in
`cv2.warpAffine` convention mapping frame pixels to aligned-face pixels.

The face is aligned by a least-squares similarity (Umeyama) of five points taken from the 68 (the two eye
centres, the nose tip, the two mouth corners) onto a canonical five-point face in a unit square, then the
face type chooses how much of the head the square covers.
"""

from __future__ import annotations

import numpy as np

from ..choices import FaceType

# Canonical five points in a unit square covering a "full" face (eyebrows to chin): the widely used
# 112-pixel five-point face of face-recognition pipelines, divided by 112.
TEMPLATE_5 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
) / 112.0

# Face type -> (centre x, centre y, side) of the aligned square, in the template's unit coordinates.
# half: eyebrows to below the mouth; full: eyebrows to chin; whole-face adds the forehead; head adds hair.
FACE_TYPE_BOX: dict[str, tuple[float, float, float]] = {
    "half": (0.5, 0.64, 0.66),
    "mid-full": (0.5, 0.60, 0.82),
    "full": (0.5, 0.56, 1.0),
    "whole-face": (0.5, 0.50, 1.30),
    "head": (0.5, 0.44, 1.75),
}


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """(68, 2) -> (5, 2): left eye centre, right eye centre, nose tip, left and right mouth corner."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src (N,2) onto dst (N,2).

    Returns a 2x3 float64 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var_s = (s ** 2).sum() / len(src)
    scale = (sig * np.diag(sign)).sum() / var_s if var_s > 0 else 1.0
    out = np.zeros((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = mu_d - out[:, :2] @ mu_s
    return out


def face_matrix(landmarks68: np.ndarray, face_type: FaceType, size: int) -> np.ndarray:
    """2x3 transform from frame pixels to a `size` x `size` aligned face of `face_type`."""
    to_unit = umeyama(five_points(landmarks68), TEMPLATE_5)
    cx, cy, side = FACE_TYPE_BOX[face_type]
    scale = size / side
    unit_to_px = np.array([[scale, 0, -(cx - side / 2) * scale], [0, scale, -(cy - side / 2) * scale]])
    return compose(unit_to_px, to_unit)


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x3 transform that applies b, then a."""
    return (to3(a) @ to3(b))[:2]


def to3(m: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(m, dtype=np.float64), [0.0, 0.0, 1.0]])


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine transform."""
    return np.linalg.inv(to3(m))[:2]


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 2x3 transform to (N, 2) points; returns float32 (N, 2)."""
    p = np.asarray(points, dtype=np.float64)
    return (p @ np.asarray(m, dtype=np.float64)[:, :2].T + np.asarray(m)[:, 2]).astype(np.float32)


def matrix_scale(m: np.ndarray) -> float:
    """Uniform scale of a similarity transform (aligned pixels per frame pixel)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(m, dtype=np.float64)[:, :2]))))


def crop_outline(m: np.ndarray, size: int) -> np.ndarray:
    """(4, 2) corners of the aligned square in frame pixels, for debug drawing."""
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float64)
    return transform_points(corners, invert(m))


def warp_to_face(frame: np.ndarray, m: np.ndarray, size: int, *, border: str = "replicate") -> np.ndarray:
    """Cut the aligned face out of a frame (HWC) with sub-pixel accuracy.

    Bicubic (Lanczos costs 5x more for no visible gain when enlarging). When the face is shrunk by more
    than 2x, the region around it is first reduced with pixel-area averaging, so the result does not alias."""
    import cv2

    m = np.asarray(m, dtype=np.float64)
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    scale = matrix_scale(m)
    if scale < 0.5:
        h, w = frame.shape[:2]
        corners = crop_outline(m, size)
        x0, y0 = np.floor(corners.min(0)).astype(int) - 2
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            region = frame[y0:y1, x0:x1]
            f = min(1.0, 1.5 * scale)   # leave 1.5x oversampling for the bicubic step
            rw, rh = max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f))
            small = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
            fx, fy = rw / (x1 - x0), rh / (y1 - y0)
            # region-small pixel centres: u = (x - x0 + 0.5) * fx - 0.5
            to_small = np.array([[fx, 0, (0.5 - x0) * fx - 0.5], [0, fy, (0.5 - y0) * fy - 0.5]])
            m_small = compose(m, invert(to_small))
            return cv2.warpAffine(small, m_small, (size, size), flags=cv2.INTER_CUBIC, borderMode=mode)
    return cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=mode)


def warp_to_frame(face: np.ndarray, m: np.ndarray, frame_shape: tuple[int, ...], *, interpolation: str = "cubic") -> np.ndarray:
    """Put an aligned image (face or mask, HW or HWC) back into frame coordinates (zeros outside)."""
    import cv2

    h, w = frame_shape[:2]
    flags = (cv2.INTER_CUBIC if interpolation == "cubic" else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(face, np.asarray(m, dtype=np.float64), (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)



# -- the original tool's whole-face crop (what DFM models expect) -----------------------------------------
# DFM files (the live companion app's models) take faces cut the way the original tool cuts its whole-face
# type: a similarity fitted by least squares from 33 of the 68 landmarks (17-48: brows, nose, eyes, upper
# lip corner; and 54) onto its mean face in a unit square; the crop is that square grown to a side of
# 1 + 2 * sqrt(2) * 0.40 (its whole-face padding) and moved up by 0.07 of the unit. Mean-face coordinates
# (landmarks 17-48 then 54) as published with that tool's alignment.
DFL_MEAN_FACE_33 = np.array([
    [0.000213256, 0.106454], [0.0752622, 0.038915], [0.18113, 0.0187482], [0.29077, 0.0344891],
    [0.393397, 0.0773906], [0.586856, 0.0773906], [0.689483, 0.0344891], [0.799124, 0.0187482],
    [0.904991, 0.038915], [0.98004, 0.106454], [0.490127, 0.203352], [0.490127, 0.307009],
    [0.490127, 0.409805], [0.490127, 0.515625], [0.36688, 0.587326], [0.426036, 0.609345],
    [0.490127, 0.628106], [0.554217, 0.609345], [0.613373, 0.587326], [0.121737, 0.216423],
    [0.187122, 0.178758], [0.265825, 0.179852], [0.334606, 0.231733], [0.260918, 0.245099],
    [0.182743, 0.244077], [0.645647, 0.231733], [0.714428, 0.179852], [0.793132, 0.178758],
    [0.858516, 0.216423], [0.79751, 0.244077], [0.719335, 0.245099], [0.254149, 0.780233],
    [0.726104, 0.780233],
], dtype=np.float64)
DFL_POINTS = list(range(17, 49)) + [54]
# (centre x, centre y, side) of the original's whole-face square in its mean-face unit coordinates
DFL_WHOLE_FACE_BOX = (0.5, 0.5 - 0.07, 1.0 + 2.0 * np.sqrt(2.0) * 0.40)


def dfl_face_matrix(landmarks68: np.ndarray, size: int) -> np.ndarray:
    """2x3 transform from frame pixels to a `size` x `size` face cut like the original tool's whole-face type
    (the crop DFM models take)."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    to_unit = umeyama(lm[DFL_POINTS], DFL_MEAN_FACE_33)
    cx, cy, side = DFL_WHOLE_FACE_BOX
    scale = size / side
    unit_to_px = np.array([[scale, 0, -(cx - side / 2) * scale], [0, scale, -(cy - side / 2) * scale]])
    return compose(unit_to_px, to_unit)


def dfl_mean_landmarks() -> np.ndarray:
    """(68, 2) float64 landmarks of the original tool's mean face (unit square); the jaw (0-16) and the points
    it does not publish are the nearest published ones, which neither crop uses."""
    lm = np.zeros((68, 2))
    lm[DFL_POINTS] = DFL_MEAN_FACE_33
    lm[:17] = DFL_MEAN_FACE_33[0]
    for i in range(49, 68):
        if i != 54:
            lm[i] = DFL_MEAN_FACE_33[-1] if i < 60 else DFL_MEAN_FACE_33[-2]
    return lm


def dfl_to_face_matrix(face_type: FaceType, size: int, dfl_size: int) -> np.ndarray:
    """The fixed 2x3 transform from a `dfl_size` crop cut by `dfl_face_matrix` to a `size` crop of facedouble's
    `face_type`, for the mean face (for a real face the two fits differ by a pixel or two at 224 px)."""
    lm = dfl_mean_landmarks() * 1000.0
    return compose(face_matrix(lm, face_type, size), invert(dfl_face_matrix(lm, dfl_size)))
