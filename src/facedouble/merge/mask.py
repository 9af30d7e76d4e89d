"""Face masks (pure functions). Masks are float32 HW arrays in [0, 1].

Landmark hulls, erosion/dilation and blur relative to the face size, the feathered edge of an aligned
crop, face-oval masks from the 478-point MediaPipe face mesh (an offline stand-in for the original tool's
FAN masks), a skin-colour model that keeps hair and other non-skin occluders out of the mask, and the
combination of these that each `MaskMode` names.
"""

from __future__ import annotations

import threading
from functools import lru_cache

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


def points_hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filled convex hull of any (N, 2) points (pixels) as an (H, W) float32 mask, anti-aliased."""
    import cv2

    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(np.asarray(points, np.float64) * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


# -- erode / dilate / blur ---------------------------------------------------------------------------

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


def modify_mask(mask: np.ndarray, erode: float, blur: float, face_size: float) -> np.ndarray:
    """Apply the `--erode` and `--blur` modifiers (-200..200), which are relative to the face size.

    Args:
        mask: (H, W) float32 in [0, 1].
        erode: erode (+) or dilate (-); 100 moves the edge by 10% of `face_size`.
        blur: soften (+) or harden (-) the edge; 100 gives a soft edge 10% of `face_size` wide.
        face_size: side of the eyebrows-to-chin face in the mask's pixels.

    Returns:
        (H, W) float32 in [0, 1].
    """
    out = erode_mask(mask, erode * face_size / 1000.0)
    if blur > 0:
        out = blur_mask(out, blur * face_size / 1000.0)
    elif blur < 0:
        out = blur_mask(out, blur / 10.0)
    return out


@lru_cache(maxsize=16)
def _edge_ramp(size: int, width: float) -> np.ndarray:
    ramp = np.clip((np.arange(size, dtype=np.float32) + 0.5) / max(width, 1e-3), 0, 1)
    ramp = np.minimum(ramp, ramp[::-1])
    out = np.minimum.outer(ramp, ramp).astype(np.float32)
    out.setflags(write=False)
    return out


def edge_feather(size: int, width: float | None = None) -> np.ndarray:
    """(size, size) float32 mask that is 1 inside and falls linearly to 0 over `width` pixels at the edge
    of an aligned crop, so nothing outside the crop can show a seam. Default width: 3% of the size, at least
    2 pixels."""
    if width is None:
        width = max(2.0, 0.03 * size)
    return _edge_ramp(int(size), float(width))


# -- face mesh (MediaPipe, 478 points) --------------------------------------------------------------------

_local = threading.local()


def _face_oval_order() -> list[int]:
    from mediapipe.python.solutions import face_mesh_connections as conn

    edges = {a: b for a, b in conn.FACEMESH_FACE_OVAL}
    start = 10  # forehead top
    order = [start]
    while True:
        nxt = edges[order[-1]]
        if nxt == start:
            return order
        order.append(nxt)


FACE_OVAL: list[int] | None = None


def face_oval_indices() -> list[int]:
    """The 36 mesh indices of the face oval, in order around the face."""
    global FACE_OVAL
    if FACE_OVAL is None:
        FACE_OVAL = _face_oval_order()
    return FACE_OVAL


def face_mesh(image: np.ndarray, *, work_size: int = 256) -> np.ndarray | None:
    """478 face-mesh landmarks of the (largest) face in an image, or None when the mesh finds no face.

    Args:
        image: (H, W, 3) RGB uint8 or float32 [0, 1]; typically an aligned face crop.
        work_size: the image is resized to this square side before the mesh runs (MediaPipe works at 192).

    Returns:
        (478, 2) float32 pixel coordinates in `image`, or None.
    """
    import cv2

    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    small = cv2.resize(img, (work_size, work_size), interpolation=cv2.INTER_AREA if max(h, w) > work_size else cv2.INTER_LINEAR)
    mesh = getattr(_local, "mesh", None)
    if mesh is None:
        import mediapipe as mp

        mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1,
                                               min_detection_confidence=0.3)
        _local.mesh = mesh
    result = mesh.process(np.ascontiguousarray(small))
    if not result.multi_face_landmarks:
        return None
    lm = result.multi_face_landmarks[0].landmark
    pts = np.array([[p.x * w, p.y * h] for p in lm], np.float32)
    return pts


def mesh_mask(mesh478: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filled face oval of a 478-point mesh (hairline to chin, ear to ear) as an (H, W) float32 mask."""
    import cv2

    pts = np.asarray(mesh478, np.float64)[face_oval_indices()]
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


class HandTracker:
    """21-point hands (MediaPipe Hands, bundled model) in frames, to keep hands out of the face mask.

    With `video=True` frames must come in order: hands found once are tracked from frame to frame, which
    finds a hand held against the face far more often than detection on single frames (on the sample clip
    with a hand over the mouth: 172 of ~170 hand frames tracked, 9 of 34 sampled frames detected singly).
    Not thread-safe: use one tracker per thread."""

    def __init__(self, video: bool = True, max_side: int = 640) -> None:
        import mediapipe as mp

        self.max_side = max_side
        self._hands = mp.solutions.hands.Hands(static_image_mode=not video, max_num_hands=2, model_complexity=1,
                                               min_detection_confidence=0.3, min_tracking_confidence=0.3)

    def __call__(self, frame: np.ndarray) -> list[np.ndarray]:
        """(21, 2) float32 frame-pixel landmarks of each hand in an RGB uint8 frame."""
        import cv2

        h, w = frame.shape[:2]
        k = min(1.0, self.max_side / max(h, w))
        img = frame if k == 1.0 else cv2.resize(frame, (int(round(w * k)), int(round(h * k))), interpolation=cv2.INTER_AREA)
        result = self._hands.process(np.ascontiguousarray(img))
        out = []
        for hand in result.multi_hand_landmarks or []:
            out.append(np.array([[p.x * w, p.y * h] for p in hand.landmark], np.float32))
        return out

    def close(self) -> None:
        self._hands.close()


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


# Mesh points of the cheeks, nose and upper lip, seldom covered by hair: the skin colour model's sample.
_SKIN_SAMPLE = [50, 101, 118, 117, 116, 123, 147, 187, 205, 36, 142, 126, 280, 330, 347, 346, 345, 352, 376, 411,
                425, 266, 371, 355, 4, 5, 195, 197, 1, 164]


def skin_mask(face: np.ndarray, sample: np.ndarray, *, tolerance: float = 3.0) -> np.ndarray:
    """Soft skin-colour mask: pixels whose chroma is close to the chroma of the sampled skin.

    A Gaussian in YCrCb chroma (Cr, Cb) and a loose luma band is fitted to the pixels under `sample`; each
    pixel scores by its Mahalanobis distance (1 within `tolerance`, falling to 0 at 1.6 x `tolerance`).
    Hair, glasses and most backgrounds score 0; a hand scores like skin.

    Args:
        face: (H, W, 3) RGB uint8 or float32 [0, 1].
        sample: (H, W) float32 or bool, where the skin is known to be (e.g. cheeks and nose).
        tolerance: accepted distance in standard deviations.

    Returns:
        (H, W) float32 in [0, 1]; all ones when the sample is too small to fit a model.
    """
    import cv2

    img = np.asarray(face)
    if img.dtype != np.uint8:
        img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    sel = np.asarray(sample) > 0.5
    if sel.sum() < 50:
        return np.ones(img.shape[:2], np.float32)
    chroma = ycc[..., 1:]
    pts = chroma[sel]
    mu = pts.mean(0)
    cov = np.cov(pts.T) + np.eye(2) * 4.0
    inv = np.linalg.inv(cov)
    d = chroma - mu
    md = np.sqrt(np.einsum("hwi,ij,hwj->hw", d, inv, d))
    luma = ycc[..., 0]
    lmu, lsd = float(luma[sel].mean()), float(luma[sel].std()) + 8.0
    ld = np.abs(luma - lmu) / lsd
    score = np.maximum(md / tolerance, ld / (2.5 * tolerance))
    out = np.clip((1.6 - score) / 0.6, 0.0, 1.0).astype(np.float32)
    out = cv2.medianBlur((out * 255).astype(np.uint8), 5).astype(np.float32) / 255.0
    return out


def skin_sample_mask(mesh478: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Where the skin model samples colour: the hull of cheek, nose and upper-lip mesh points."""
    import cv2

    pts = np.asarray(mesh478, np.float64)[_SKIN_SAMPLE]
    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, shift=4)
    # keep out the eyes, nostrils and mouth: they are not skin-coloured
    return mask.astype(np.float32) / 255.0


def combine(mode: str, *, learned: np.ndarray | None = None, dst: np.ndarray | None = None,
            mesh_prd: np.ndarray | None = None, mesh_dst: np.ndarray | None = None,
            xseg_prd: np.ndarray | None = None, xseg_dst: np.ndarray | None = None) -> np.ndarray:
    """The mask a `MaskMode` names, from the masks it needs (all (H, W) float32, same shape).

    learned, dst, mesh-prd, mesh-dst: that mask; mesh-prd-dst: mesh-prd x mesh-dst; learned-mesh-dst:
    learned x mesh-dst; learned-dst: learned x dst. XSeg (the trained mask network, facedouble.xseg):
    xseg-prd (on the predicted face), xseg-dst (the mask applied to the dst face), xseg-prd-dst (their
    product), learned-xseg-prd, learned-xseg-dst, learned-xseg-prd-dst (each x learned).
    """
    need = {
        "learned": ("learned",), "dst": ("dst",), "mesh-prd": ("mesh_prd",), "mesh-dst": ("mesh_dst",),
        "mesh-prd-dst": ("mesh_prd", "mesh_dst"), "learned-mesh-dst": ("learned", "mesh_dst"),
        "learned-dst": ("learned", "dst"),
        "xseg-prd": ("xseg_prd",), "xseg-dst": ("xseg_dst",), "xseg-prd-dst": ("xseg_prd", "xseg_dst"),
        "learned-xseg-prd": ("learned", "xseg_prd"), "learned-xseg-dst": ("learned", "xseg_dst"),
        "learned-xseg-prd-dst": ("learned", "xseg_prd", "xseg_dst"),
    }
    given = {"learned": learned, "dst": dst, "mesh_prd": mesh_prd, "mesh_dst": mesh_dst, "xseg_prd": xseg_prd,
             "xseg_dst": xseg_dst}
    if mode not in need:
        raise ValueError(f"unknown mask mode {mode!r}")
    out = None
    for name in need[mode]:
        m = given[name]
        if m is None:
            raise ValueError(f"mask mode {mode!r} needs the {name} mask")
        out = m.astype(np.float32) if out is None else out * m
    return np.clip(out, 0.0, 1.0).astype(np.float32)


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
