"""Face regions as masks (pure functions): the hull of the 68 landmarks, the face oval of the 478-point mesh,
hands, the eyes and mouth, the skin sample, XSeg label polygons, a mask moved from one crop to another, and
erosion / blur by a distance. Shared by training, merge, sort, the report and XSeg. Masks are (H, W) float32
in [0, 1]; points are pixels.
"""

from __future__ import annotations

import numpy as np

from .mesh import face_oval_indices

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


def points_hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filled convex hull of any (N, 2) points (pixels) as an (H, W) float32 mask, anti-aliased."""
    import cv2

    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(np.asarray(points, np.float64) * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def erode_mask(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Shrink (`pixels` > 0) or grow (`pixels` < 0) a mask by a distance in pixels.

    Args:
        mask: (H, W) float32 in [0, 1].
        pixels: distance; fractions count (a Euclidean distance transform of the half-level set).

    Returns:
        (H, W) float32. Pointwise monotone: a larger `pixels` never gives a larger value anywhere, so the
        mask shrinks monotonically as `pixels` grows. Eroding keeps the soft values inside, dilating fills
        the grown band with 1.
    """
    import cv2

    mask = np.asarray(mask, np.float32)
    if pixels == 0:
        return mask.copy()
    inside = (mask >= 0.5).astype(np.uint8)
    if pixels > 0:
        dist = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        return np.where(dist > pixels, mask, 0.0).astype(np.float32)
    dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.where(dist <= -pixels, 1.0, mask).astype(np.float32)


def blur_mask(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Soften (`pixels` > 0) or harden (`pixels` < 0) the mask edge.

    Args:
        mask: (H, W) float32 in [0, 1].
        pixels: > 0: width of the soft edge in pixels (two box filters of that width, ~ a Gaussian with
            sigma = 0.4 * pixels); < 0: the edge ramp is made steeper by a factor 1 + |pixels| / 4.

    Returns:
        (H, W) float32 in [0, 1].
    """
    import cv2

    mask = np.asarray(mask, np.float32)
    if pixels == 0:
        return mask.copy()
    if pixels < 0:
        gain = 1.0 + abs(pixels) / 4.0
        return np.clip((mask - 0.5) * gain + 0.5, 0.0, 1.0).astype(np.float32)
    k = max(1, int(round(pixels)))
    if k < 2:
        return mask.copy()
    out = cv2.blur(mask, (k, k), borderType=cv2.BORDER_CONSTANT)
    out = cv2.blur(out, (k, k), borderType=cv2.BORDER_CONSTANT)
    return np.clip(out, 0.0, 1.0)


def mesh_mask(mesh478: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filled face oval of a 478-point mesh (hairline to chin, ear to ear) as an (H, W) float32 mask."""
    import cv2

    pts = np.asarray(mesh478, np.float64)[face_oval_indices()]
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def hand_mask(hands: list[np.ndarray], m: np.ndarray, size: int, *, grow: float = 0.12) -> np.ndarray:
    """Where hands are, in an aligned square: the hull of each hand's 21 points (frame pixels) mapped by the
    frame -> face matrix `m`, grown by `grow` x the hand's size (the points are joint centres, fingers are
    wider) and softened. Returns (size, size) float32 in [0, 1] (1 = hand)."""
    import cv2

    out = np.zeros((size, size), np.float32)
    for pts in hands:
        p = np.asarray(pts, np.float64) @ np.asarray(m, np.float64)[:, :2].T + np.asarray(m, np.float64)[:, 2]
        one = np.zeros((size, size), np.uint8)
        cv2.fillConvexPoly(one, cv2.convexHull(np.round(p * 16).astype(np.int32)), 255, lineType=cv2.LINE_AA, shift=4)
        extent = float(np.ptp(p[:, 0]) + np.ptp(p[:, 1])) / 2
        r = int(round(grow * extent))
        if r > 0:
            one = cv2.dilate(one, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        out = np.maximum(out, one.astype(np.float32) / 255.0)
    if out.any():
        out = cv2.GaussianBlur(out, (0, 0), max(1.0, size / 128))
    return out


_SKIN_SAMPLE = [50, 101, 118, 117, 116, 123, 147, 187, 205, 36, 142, 126, 280, 330, 347, 346, 345, 352, 376, 411,
                425, 266, 371, 355, 4, 5, 195, 197, 1, 164]


def skin_sample_mask(mesh478: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Where the skin model samples colour: the hull of cheek, nose and upper-lip mesh points."""
    import cv2

    pts = np.asarray(mesh478, np.float64)[_SKIN_SAMPLE]
    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, shift=4)
    # keep out the eyes, nostrils and mouth: they are not skin-coloured
    return mask.astype(np.float32) / 255.0


def remap_mask(mask: np.ndarray, m_from: np.ndarray, m_to: np.ndarray, size: int) -> np.ndarray:
    """A face mask stored in one crop of a frame moved into another crop of the same frame.

    Args:
        mask: (h, w) float32 [0, 1], in the crop that the 2x3 frame -> crop matrix `m_from` makes.
        m_to: 2x3 frame -> crop matrix of the wanted (size, size) crop.

    Returns:
        (size, size) float32 [0, 1]; 0 where the stored crop does not reach.
    """
    import cv2

    a = np.vstack([np.asarray(m_from, np.float64), [0.0, 0.0, 1.0]])
    b = np.vstack([np.asarray(m_to, np.float64), [0.0, 0.0, 1.0]])
    m = (b @ np.linalg.inv(a))[:2]
    out = cv2.warpAffine(np.asarray(mask, np.float32), m, (int(size), int(size)), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def label_mask(include: list, exclude: list, size: int | tuple[int, int], *, scale: float = 1.0) -> np.ndarray:
    """The mask of XSeg labels: the include polygons filled, minus the exclude polygons (exclude wins where
    they overlap), as (H, W) float32 in {0, 1}. Polygons are [[x, y], ...] in pixels, multiplied by `scale`
    first (labels of a 256 px face drawn into a 128 px mask: 0.5); polygons of fewer than 3 points are ignored."""
    import cv2

    h, w = (size, size) if isinstance(size, int) else size
    out = np.zeros((h, w), np.uint8)
    for polys, value in ((include, 1), (exclude, 0)):
        pts = [np.round(np.asarray(p, np.float64).reshape(-1, 2) * scale * 16).astype(np.int32)
               for p in polys if len(p) >= 3]
        if pts:
            cv2.fillPoly(out, pts, value, lineType=cv2.LINE_8, shift=4)
    return out.astype(np.float32)


_RIGHT_EYE, _LEFT_EYE, _MOUTH = range(36, 42), range(42, 48), range(48, 68)


def _hulls_mask(landmarks: np.ndarray, size: int, groups, kernel: int) -> np.ndarray:
    """float32 HW mask of the convex hulls of the landmark index `groups`, dilated by an ellipse of `kernel` px."""
    import cv2

    mask = np.zeros((size, size), np.uint8)
    lm = np.asarray(landmarks, np.float64)
    for idx in groups:
        hull = cv2.convexHull(np.round(lm[list(idx)] * 16).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_AA, shift=4)
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel)))
    return mask.astype(np.float32) / 255.0


def eyes_mouth_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """float32 HW mask of both eyes and the mouth (hulls of points 36-41, 42-47, 48-67), grown by 1/32 of the
    face so the eyelids and lips are included."""
    return _hulls_mask(landmarks, size, (_RIGHT_EYE, _LEFT_EYE, _MOUTH), max(3, size // 16) | 1)


def eyes_mask(landmarks: np.ndarray, size: int, grow: float = 0.05) -> np.ndarray:
    """float32 HW mask of both eyes (hulls of points 36-41 and 42-47) grown by `grow` x `size` px on every side,
    so the lids, lashes and the skin just around them are included (0.05: about the eye's own height)."""
    return _hulls_mask(landmarks, size, (_RIGHT_EYE, _LEFT_EYE), max(3, int(2 * grow * size)) | 1)
