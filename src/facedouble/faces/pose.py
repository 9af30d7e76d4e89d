"""Head pose (yaw, pitch, roll in degrees) from 68 landmarks (pure).

A generic 3-D head (six points: nose tip, chin, outer eye corners, mouth corners; millimetre-scale values
of an average adult head) is fitted to the 2-D landmarks with `cv2.solvePnP` and a pinhole camera whose
focal length is the image's longest side. Conventions, in the image as shown:

- yaw   > 0: the face turns towards the image's right (its nose points right); 0 = frontal
- pitch > 0: the face looks up
- roll  > 0: the head tilts clockwise (the eye on the image's right is lower)
"""

from __future__ import annotations

import numpy as np

# x right, y down, z away from the camera; the nose tip is the origin.
MODEL_3D = np.array([
    [0.0, 0.0, 0.0],          # 30 nose tip
    [0.0, 330.0, 65.0],       # 8  chin
    [-225.0, -170.0, 135.0],  # 36 outer corner of the eye on the image's left
    [225.0, -170.0, 135.0],   # 45 outer corner of the other eye
    [-150.0, 150.0, 125.0],   # 48 mouth corner, image left
    [150.0, 150.0, 125.0],    # 54 mouth corner, image right
], dtype=np.float64)
MODEL_INDEX = [30, 8, 36, 45, 48, 54]


def pose_angles(landmarks68: np.ndarray, image_size: tuple[int, int] | None = None) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees. `image_size` (width, height) sets the camera; without it a camera
    centred on the face with a focal length of four face widths is assumed."""
    import cv2

    lm = np.asarray(landmarks68, dtype=np.float64)
    pts = lm[MODEL_INDEX]
    if image_size and image_size[0] > 0 and image_size[1] > 0:
        w, h = image_size
        f, cx, cy = float(max(w, h)), w / 2.0, h / 2.0
    else:
        span = float(np.ptp(lm[:, 0])) or 1.0
        f, (cx, cy) = 4 * span, lm.mean(0)
    cam = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=np.float64)
    # start from a frontal head at a plausible distance so the iterative solver does not flip
    scale = np.linalg.norm(pts[2] - pts[3]) / 450.0 or 1.0
    tvec0 = np.array([[(pts[0, 0] - cx) / scale], [(pts[0, 1] - cy) / scale], [f / scale]], dtype=np.float64)
    ok, rvec, _ = cv2.solvePnP(MODEL_3D, pts, cam, None, rvec=np.zeros((3, 1)), tvec=tvec0, useExtrinsicGuess=True,
                               flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return 0.0, 0.0, _roll(lm)
    rot, _ = cv2.Rodrigues(rvec)
    forward = rot @ np.array([0.0, 0.0, -1.0])     # from the face towards the camera, in camera space
    yaw = np.degrees(np.arctan2(forward[0], -forward[2]))
    pitch = np.degrees(np.arctan2(-forward[1], np.hypot(forward[0], forward[2])))
    right = rot @ np.array([1.0, 0.0, 0.0])
    roll = np.degrees(np.arctan2(right[1], right[0]))
    return float(yaw), float(pitch), float(roll)


def _roll(lm: np.ndarray) -> float:
    d = lm[42:48].mean(0) - lm[36:42].mean(0)
    return float(np.degrees(np.arctan2(d[1], d[0])))
