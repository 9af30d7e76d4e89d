"""Face masks (pure functions). Masks are float32 HW arrays in [0, 1]."""

from __future__ import annotations

import numpy as np

# Outline of the face from 68 points: jaw (0-16), then the eyebrows back (26..17) so the forehead above the
# brows is included up to the brow line.
_OUTLINE = list(range(0, 17)) + list(range(26, 16, -1))


def hull_mask(landmarks68: np.ndarray, shape: tuple[int, int], *, forehead: float = 0.0) -> np.ndarray:
    """Filled convex hull of the face's 68 landmarks (jaw and brows) in an image of `shape` (h, w).

    `forehead` > 0 lifts the brow points away from the nose by that fraction of the brow-to-chin height,
    so whole-face crops include the forehead."""
    import cv2

    pts = np.asarray(landmarks68, dtype=np.float64)[_OUTLINE].copy()
    if forehead > 0:
        chin = np.asarray(landmarks68, dtype=np.float64)[8]
        brows = pts[17:]
        brows += (brows - chin) * forehead
        pts[17:] = brows
    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0
