"""Quality metrics of a face swap (pure functions: arrays in, numbers out; nothing here touches disk).

Images are RGB uint8 HWC, masks float32 HW in [0, 1] (or bool), landmarks float32 (68, 2) frame pixels.
What each metric means, and the targets of DESIGN.md section 4 they are judged against:

| metric | function | target |
|---|---|---|
| identity: distance of the swapped face's 128-d embedding to the src and dst centroids | `identity_summary` | share nearer src >= 0.9 |
| expression: 68-landmark error against dst / inter-ocular distance | `landmark_error` | <= 0.05 |
| pose: yaw and pitch difference against dst (degrees) | `pose_difference` | (shown) |
| eyes: how open the result's eyes are / dst's (lid gap over eye width) | `eye_opening` | (shown) |
| flicker: mean frame-to-frame change inside the face / dst's own, dst carrying the result's mark (merge/temporal.flicker) | `pooled_flicker` | <= 1.10 |
| landmark jitter: second difference of the landmarks over 3 frames / dst's own | `landmark_jitter` | (shown) |
| background: PSNR outside the (dilated) face mask against dst | `background_error`, `psnr` | >= 45 dB |
| seam: Lab colour difference across the mask edge, minus dst's across the same ring | `ring_delta_e` | (shown) |
| detail: Laplacian variance inside the inner-face box / dst's | `laplacian_variance` | >= 0.7 |
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Sequence

import numpy as np

from ..faces.identity import SAME_PERSON
from ..merge import temporal
from ..faces.regions import erode_mask

PSNR_CAP = 100.0        # dB written for identical images (the PSNR itself is infinite)
CHANGED_LEVEL = 12      # a pixel "changed" when a channel moved by more than this (the provenance mark moves <= 9)
INNER_FACE = slice(17, 68)  # brows, eyes, nose, mouth: the "face box" of the detail metric


# -- targets -------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Targets:
    """The quality targets of DESIGN.md section 4."""

    detail: float = 0.7          # result's face detail / dst's, at least
    landmarks: float = 0.05      # mean 68-landmark error / inter-ocular distance, at most
    flicker: float = 1.10        # flicker inside the face / dst video's own, at most
    background_db: float = 45.0  # PSNR of everything outside the face, at least
    identity: float = 0.9        # share of frames whose face is nearer the src centroid than the dst's, at least


# -- pixels --------------------------------------------------------------------------------------------------

def _binary(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    return m if m.dtype == bool else m >= 0.5


def _region(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape[:2], bool)
    return _binary(mask)


def squared_error(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, int]:
    """(sum of squared differences over pixels and channels, number of values) where `mask` is set
    (bool, or float >= 0.5; None = everywhere). For pooling PSNR over many frames."""
    region = _region(mask, a.shape)
    if not region.any():
        return 0.0, 0
    d = a[region].astype(np.float64) - b[region].astype(np.float64)
    return float(np.sum(d * d)), int(d.size)


def psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    """PSNR in dB of a mean squared error; inf for 0, nan for nan."""
    if not np.isfinite(mse):
        return float("nan")
    return float("inf") if mse <= 0 else float(10.0 * math.log10(peak * peak / mse))


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, peak: float = 255.0) -> float:
    """PSNR in dB of image `a` against `b` where `mask` is set (None = the whole image).

    inf when they are identical there, nan when the mask is empty."""
    sse, n = squared_error(a, b, mask)
    return psnr_from_mse(sse / n, peak) if n else float("nan")


def changed_share(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, level: int = CHANGED_LEVEL) -> float:
    """Share of the pixels under `mask` where some channel differs by more than `level` (nan if empty)."""
    region = _region(mask, a.shape)
    if not region.any():
        return float("nan")
    d = np.abs(a[region].astype(np.int16) - b[region].astype(np.int16))
    if d.ndim == 2:
        d = d.max(axis=1)
    return float(np.mean(d > level))


def mean_abs_difference(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference per value under `mask` (nan if empty)."""
    region = _region(mask, a.shape)
    if not region.any():
        return float("nan")
    return float(np.mean(np.abs(a[region].astype(np.float32) - b[region].astype(np.float32))))


def grow(mask: np.ndarray, pixels: float) -> np.ndarray:
    """bool mask of the pixels within `pixels` of `mask` (bool, or >= 0.5), the mask included."""
    m = _binary(mask)
    if pixels <= 0:
        return m.copy()
    return erode_mask(m.astype(np.float32), -float(pixels)) >= 0.5


def background_mask(face_mask: np.ndarray, margin: float) -> np.ndarray:
    """bool mask of everything farther than `margin` pixels from any part of the face mask (any value > 0.02
    counts as face, so the soft edge of a blended mask is left out as well)."""
    touched = (np.asarray(face_mask, np.float32) > 0.02).astype(np.float32)
    return ~grow(touched, margin)


# -- landmarks and pose ---------------------------------------------------------------------------------------

def interocular(landmarks68: np.ndarray) -> float:
    """Distance between the outer eye corners (points 36 and 45), the 300-W normalisation."""
    lm = np.asarray(landmarks68, np.float64)
    return float(np.linalg.norm(lm[45] - lm[36]))


def landmark_error(landmarks: np.ndarray, reference: np.ndarray) -> float:
    """Mean point-to-point distance between two 68-point sets, divided by the reference's inter-ocular
    distance (0 = same expression and pose; 0.05 is about a millimetre-scale miss on a real face)."""
    a = np.asarray(landmarks, np.float64)
    b = np.asarray(reference, np.float64)
    iod = interocular(b)
    if iod <= 0:
        return float("nan")
    return float(np.mean(np.linalg.norm(a - b, axis=1)) / iod)


def eye_opening(landmarks68: np.ndarray) -> float:
    """How open the eyes are: the gap between the lids (points 37-41 and 38-40, 43-47 and 44-46) over the eye's
    width (36-39, 42-45), both eyes averaged: about 0.3 for open eyes looking ahead, under 0.1 for closed ones."""
    lm = np.asarray(landmarks68, np.float64)

    def one(p: np.ndarray) -> float:
        width = np.linalg.norm(p[3] - p[0])
        gap = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
        return gap / (2 * width) if width > 0 else float("nan")

    return float((one(lm[36:42]) + one(lm[42:48])) / 2)


def pose_difference(landmarks: np.ndarray, reference: np.ndarray, image_size: tuple[int, int] | None = None
                    ) -> tuple[float, float]:
    """(|yaw difference|, |pitch difference|) in degrees between two faces (faces/pose.pose_angles)."""
    from ..faces.pose import pose_angles

    ya, pa, _ = pose_angles(landmarks, image_size)
    yb, pb, _ = pose_angles(reference, image_size)
    return abs(ya - yb), abs(pa - pb)


def landmark_jitter(track: Sequence[np.ndarray] | np.ndarray) -> float:
    """Landmark jitter of consecutive frames: mean length of the second difference
    lm[t-1] - 2 lm[t] + lm[t+1] over points and frames, divided by the inter-ocular distance.

    Steady motion (constant speed) gives 0, so what remains is the shake. nan for fewer than 3 frames."""
    lm = np.asarray(track, np.float64)
    if lm.ndim != 3 or len(lm) < 3:
        return float("nan")
    iod = interocular(lm.mean(0))
    if iod <= 0:
        return float("nan")
    acc = lm[:-2] - 2 * lm[1:-1] + lm[2:]
    return float(np.mean(np.linalg.norm(acc, axis=2)) / iod)


# -- detail ---------------------------------------------------------------------------------------------------

def face_box(landmarks68: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 (ints, clipped to the image) of the inner face: brows, eyes, nose and mouth (points
    17-67), which holds the face's detail and little background."""
    lm = np.asarray(landmarks68, np.float64)[INNER_FACE]
    h, w = shape[:2]
    x0, y0 = np.floor(lm.min(0)).astype(int)
    x1, y1 = np.ceil(lm.max(0)).astype(int) + 1
    return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))


def laplacian_variance(image: np.ndarray, box: tuple[int, int, int, int] | None = None) -> float:
    """Variance of the Laplacian (3x3) of the grey image inside `box` (x0, y0, x1, y1; None = all): the
    usual sharpness measure. The Laplacian is taken with one pixel of context around the box."""
    import cv2

    img = np.asarray(image)
    h, w = img.shape[:2]
    x0, y0, x1, y1 = box if box is not None else (0, 0, w, h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return float("nan")
    cx0, cy0, cx1, cy1 = max(0, x0 - 1), max(0, y0 - 1), min(w, x1 + 1), min(h, y1 + 1)
    crop = img[cy0:cy1, cx0:cx1]
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    lap = cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F, ksize=3)
    inner = lap[y0 - cy0:y0 - cy0 + (y1 - y0), x0 - cx0:x0 - cx0 + (x1 - x0)]
    return float(inner.var())


def ratio(a: float, b: float) -> float:
    """a / b, nan when either is missing or b is 0."""
    if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or b <= 0:
        return float("nan")
    return float(a / b)


# -- the seam -------------------------------------------------------------------------------------------------

def ring_masks(mask: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """(inner, outer) bool rings `width` pixels wide just inside and just outside the edge of `mask` (>= 0.5)."""
    inside = _binary(mask)
    m = inside.astype(np.float32)
    inner = inside & ~(erode_mask(m, float(width)) >= 0.5)
    outer = (erode_mask(m, -float(width)) >= 0.5) & ~inside
    return inner, outer


def to_lab(image: np.ndarray) -> np.ndarray:
    """CIE Lab (L 0..100) float32 of an RGB uint8 image."""
    import cv2

    return cv2.cvtColor(np.asarray(image, np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def ring_delta_e(image: np.ndarray, mask: np.ndarray, width: float, sectors: int = 16, min_pixels: int = 4) -> float:
    """Colour step across the edge of `mask`: the mean, over `sectors` angular sectors around the mask's
    centre, of the CIE76 Delta E between the mean Lab colour of the ring just inside the edge and the ring
    just outside it (each `width` pixels wide). Sectors keep a seam on one side from being averaged away by
    the other. nan when no sector has `min_pixels` pixels on both sides.

    Compare a result with the same ring in dst: a natural face edge has its own step; a seam adds to it."""
    inner, outer = ring_masks(mask, width)
    inside = _binary(mask)
    if not inner.any() or not outer.any():
        return float("nan")
    ys, xs = np.nonzero(inside)
    cy, cx = ys.mean(), xs.mean()
    lab = to_lab(image)
    sums, counts = [], []
    for ring in (inner, outer):
        ry, rx = np.nonzero(ring)
        sector = ((np.arctan2(ry - cy, rx - cx) + np.pi) / (2 * np.pi) * sectors).astype(np.int64) % sectors
        colours = lab[ry, rx].astype(np.float64)
        sums.append(np.stack([np.bincount(sector, colours[:, c], sectors) for c in range(3)], 1))
        counts.append(np.bincount(sector, minlength=sectors).astype(np.float64))
    ok = (counts[0] >= min_pixels) & (counts[1] >= min_pixels)
    if not ok.any():
        return float("nan")
    mean_in = sums[0][ok] / counts[0][ok, None]
    mean_out = sums[1][ok] / counts[1][ok, None]
    return float(np.mean(np.linalg.norm(mean_in - mean_out, axis=1)))


# -- temporal -------------------------------------------------------------------------------------------------

def clip_flicker(frames: Sequence[np.ndarray], mask: np.ndarray) -> tuple[float, float]:
    """(mean frame-to-frame change inside `mask`, its weight) for a short run of consecutive frames, with
    merge/temporal.flicker. Weights let runs from all over a video be pooled exactly as if
    temporal.flicker had seen them as one sequence (see `pooled_flicker`)."""
    m = np.asarray(mask, np.float32)
    value = temporal.flicker(frames, m)
    return value, float(m.sum()) * max(0, len(frames) - 1)


def pooled_flicker(result: Iterable[tuple[float, float]], dst: Iterable[tuple[float, float]]) -> float:
    """Flicker of the result relative to dst over many short runs: sum(value x weight) of the result over
    the same sum of dst (1.0 = as steady as the original). nan when dst never changes or nothing was given."""
    num = sum(v * w for v, w in result if np.isfinite(v))
    den = sum(v * w for v, w in dst if np.isfinite(v))
    return float(num / den) if den > 0 else float("nan")


# -- identity -------------------------------------------------------------------------------------------------

from ..faces.likeness import identity_summary, robust_centroid  # noqa: E402,F401  (pure; shared with training)


# -- per frame, summary, worst frames --------------------------------------------------------------------------

@dataclasses.dataclass
class FrameScore:
    """What was measured on one sampled frame. Missing measurements are None."""

    number: int                          # frame number (1 = first)
    dst_face: bool = False               # a dst face was there (found, or listed in data_dst/aligned)
    result_face: str | None = None       # "detected", "fitted" (landmarks fitted in dst's box), or None
    swapped: bool | None = None          # the face region was replaced (merged_mask, or it changed)
    mask_source: str | None = None       # "merged_mask" or "hull" (dilated hull of dst's landmarks)
    face_size: float | None = None       # dst face size in pixels
    d_src: float | None = None           # embedding distance of the result face to the src centroid
    d_dst: float | None = None           # ... to the dst centroid
    landmark_error: float | None = None  # / inter-ocular distance
    yaw_diff: float | None = None        # degrees
    pitch_diff: float | None = None
    eyes_result: float | None = None     # eye opening (`eye_opening`) of the result's face
    eyes_dst: float | None = None        # ... of dst's face
    background_psnr: float | None = None  # dB (capped at PSNR_CAP)
    background_sse: float | None = None  # for pooling
    background_n: int | None = None
    background_changed: float | None = None  # share of background pixels changed by > CHANGED_LEVEL
    # the same against dst carrying the result's own provenance mark: what the merge changed, the mark aside
    background_merge_psnr: float | None = None
    background_merge_sse: float | None = None
    seam_result: float | None = None     # ring Delta E in the result
    seam_dst: float | None = None        # same ring in dst
    detail_result: float | None = None   # Laplacian variance in the inner-face box
    detail_dst: float | None = None
    detail_src: float | None = None      # result face detail / src faces' (aligned at the same size)
    flicker_result: float | None = None  # mean change over the run of frames after this one
    flicker_dst: float | None = None     # dst's own, carrying the result's invisible mark when it has one
    flicker_dst_unmarked: float | None = None  # dst's own as it is
    flicker_weight: float | None = None
    jitter_result: float | None = None
    jitter_dst: float | None = None
    badness: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def detail_ratio(self) -> float:
        return ratio(self.detail_result, self.detail_dst)

    @property
    def eyes_ratio(self) -> float:
        return ratio(self.eyes_result, self.eyes_dst)

    @property
    def seam_excess(self) -> float:
        if self.seam_result is None or self.seam_dst is None:
            return float("nan")
        return float(self.seam_result - self.seam_dst)

    @property
    def nearer_src(self) -> bool | None:
        if self.d_src is None or self.d_dst is None:
            return None
        return bool(self.d_src < self.d_dst)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["detail_ratio"] = self.detail_ratio
        out["seam_excess"] = self.seam_excess
        out["eyes_ratio"] = self.eyes_ratio
        out["nearer_src"] = self.nearer_src
        return {k: _clean(v) for k, v in out.items()}


def _clean(v: Any) -> Any:
    """JSON-safe: non-finite floats become None, numpy scalars plain numbers."""
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def clean(value: Any) -> Any:
    """A copy of `value` that strict JSON can hold (nan and inf -> None)."""
    return _clean(value)


def _vals(scores: Iterable[FrameScore], get) -> np.ndarray:
    out = []
    for s in scores:
        v = get(s)
        if v is not None and np.isfinite(v):
            out.append(float(v))
    return np.asarray(out, np.float64)


def _stat(values: np.ndarray, how: str = "mean") -> float:
    if not len(values):
        return float("nan")
    return float({"mean": np.mean, "median": np.median, "max": np.max, "min": np.min}[how](values))


def frame_badness(s: FrameScore, t: Targets) -> tuple[float, list[str]]:
    """How far a frame misses the targets (0 = meets all), and why, in words. Each term is the relative
    miss of one target (e.g. landmark error 0.10 against 0.05 adds 1.0); a dst face that was not swapped
    adds 3, one whose result face could not be found adds 2."""
    score, why = 0.0, []
    if s.dst_face and s.swapped is False:
        score += 3.0
        why.append("dst face not swapped")
    if s.dst_face and s.result_face is None:
        score += 2.0
        why.append("no face found in the result")
    elif s.result_face == "fitted":
        why.append("result face not detected (landmarks fitted in dst's box)")
    if s.d_src is not None and s.d_dst is not None:
        miss = max(0.0, s.d_src / SAME_PERSON - 1.0) + (1.0 if s.d_src >= s.d_dst else 0.0)
        if miss > 0:
            score += miss
            why.append(f"identity: distance to src {s.d_src:.2f}, to dst {s.d_dst:.2f}")
    if s.landmark_error is not None and np.isfinite(s.landmark_error) and s.landmark_error > t.landmarks:
        score += s.landmark_error / t.landmarks - 1.0
        why.append(f"landmark error {s.landmark_error:.3f}")
    dr = s.detail_ratio
    if np.isfinite(dr) and dr < t.detail:
        score += min(3.0, t.detail / max(dr, 1e-3) - 1.0)
        why.append(f"detail {dr:.2f} of dst's")
    if s.background_psnr is not None and np.isfinite(s.background_psnr) and s.background_psnr < t.background_db:
        score += (t.background_db - s.background_psnr) / 10.0
        why.append(f"background {s.background_psnr:.1f} dB")
    ex = s.seam_excess
    if np.isfinite(ex) and ex > 2.0:  # ~ a just-noticeable colour difference
        score += ex / 5.0
        why.append(f"seam: Delta E {s.seam_result:.1f} across the edge (dst {s.seam_dst:.1f})")
    if s.flicker_result is not None and s.flicker_dst and s.flicker_dst > 0:
        fr = s.flicker_result / s.flicker_dst
        if fr > t.flicker * 1.5:
            score += min(2.0, fr / t.flicker - 1.0)
            why.append(f"flicker {fr:.2f}x dst's")
    return float(score), why


def worst_frames(scores: Sequence[FrameScore], count: int) -> list[FrameScore]:
    """The `count` frames with the highest badness (ties: earlier first); only frames that miss something."""
    bad = [s for s in scores if s.badness > 0]
    return sorted(bad, key=lambda s: (-s.badness, s.number))[:count]


def _check(name: str, value: float, target: float, higher_is_better: bool, unit: str = "", note: str = "") -> dict:
    ok = None
    if value is not None and np.isfinite(value):
        ok = bool(value >= target) if higher_is_better else bool(value <= target)
    return {"name": name, "value": value, "target": target, "op": ">=" if higher_is_better else "<=",
            "pass": ok, "unit": unit, "note": note}


def summarize(scores: Sequence[FrameScore], t: Targets) -> dict[str, Any]:
    """The summary of a report: one section per quality, and `checks` (value, target, pass) for the
    DESIGN.md section 4 targets. `pass` is True when every check with a value passes, None when none has one."""
    faces = [s for s in scores if s.dst_face]
    ident = identity_summary([s.d_src for s in faces if s.d_src is not None and s.d_dst is not None],
                             [s.d_dst for s in faces if s.d_src is not None and s.d_dst is not None])
    lm = _vals(faces, lambda s: s.landmark_error)
    yaw = _vals(faces, lambda s: s.yaw_diff)
    pitch = _vals(faces, lambda s: s.pitch_diff)
    eyes = _vals(faces, lambda s: s.eyes_ratio)
    flick = pooled_flicker([(s.flicker_result, s.flicker_weight) for s in faces if s.flicker_weight],
                           [(s.flicker_dst, s.flicker_weight) for s in faces if s.flicker_weight])
    flick_unmarked = pooled_flicker([(s.flicker_result, s.flicker_weight) for s in faces if s.flicker_weight],
                                    [(s.flicker_dst_unmarked if s.flicker_dst_unmarked is not None else s.flicker_dst,
                                      s.flicker_weight) for s in faces if s.flicker_weight])
    jr = _vals(faces, lambda s: s.jitter_result if s.jitter_dst is not None else None)
    jd = _vals(faces, lambda s: s.jitter_dst if s.jitter_result is not None else None)
    jitter = float(jr.sum() / jd.sum()) if len(jd) and jd.sum() > 0 else float("nan")
    sse = sum(s.background_sse or 0.0 for s in scores if s.background_n)
    nbg = sum(s.background_n or 0 for s in scores)
    bg = min(PSNR_CAP, psnr_from_mse(sse / nbg)) if nbg else float("nan")
    marked = [s for s in scores if s.background_n and s.background_merge_sse is not None]
    nbm = sum(s.background_n or 0 for s in marked)
    bg_merge = (min(PSNR_CAP, psnr_from_mse(sum(s.background_merge_sse or 0.0 for s in marked) / nbm))
                if nbm else float("nan"))
    bg_frames = _vals(scores, lambda s: s.background_psnr)
    changed = _vals(scores, lambda s: s.background_changed)
    seam_r = _vals(faces, lambda s: s.seam_result if s.seam_dst is not None else None)
    seam_d = _vals(faces, lambda s: s.seam_dst if s.seam_result is not None else None)
    detail = _vals(faces, lambda s: s.detail_ratio)
    detail_src = _vals(faces, lambda s: s.detail_src)
    swapped = sum(1 for s in faces if s.swapped)
    measured = sum(1 for s in faces if s.result_face)

    sections = {
        "identity": ident | {"target_nearer_src": t.identity, "same_person_threshold": SAME_PERSON},
        "expression_pose": {"n": int(len(lm)), "landmark_error_mean": _stat(lm), "landmark_error_median": _stat(lm, "median"),
                            "landmark_error_max": _stat(lm, "max"), "yaw_diff_mean": _stat(yaw),
                            "pitch_diff_mean": _stat(pitch), "eyes_open_ratio_median": _stat(eyes, "median"),
                            "target_landmark_error": t.landmarks},
        "temporal": {"flicker_ratio": flick, "flicker_ratio_unmarked_dst": flick_unmarked, "jitter_ratio": jitter,
                     "runs": int(sum(1 for s in faces if s.flicker_weight)),
                     "target_flicker_ratio": t.flicker},
        "blending": {"background_psnr_db": bg, "background_psnr_min_db": _stat(bg_frames, "min"),
                     "background_merge_psnr_db": bg_merge,
                     "background_changed_share": _stat(changed), "changed_level": CHANGED_LEVEL,
                     "seam_delta_e_result": _stat(seam_r), "seam_delta_e_dst": _stat(seam_d),
                     "seam_delta_e_excess": _stat(seam_r - seam_d) if len(seam_r) == len(seam_d) else float("nan"),
                     "target_background_db": t.background_db},
        "detail": {"ratio_to_dst_median": _stat(detail, "median"), "ratio_to_dst_mean": _stat(detail),
                   "ratio_to_src_median": _stat(detail_src, "median"), "target_ratio": t.detail},
        "coverage": {"frames_scored": len(scores), "with_dst_face": len(faces), "swapped": swapped,
                     "not_swapped": sum(1 for s in faces if s.swapped is False), "result_face_measured": measured,
                     "without_dst_face": len(scores) - len(faces),
                     "swapped_share": swapped / len(faces) if faces else float("nan")},
    }
    checks = [
        _check("identity retrieval (share of faces nearer src than dst)", ident["nearer_src"], t.identity, True),
        _check("face detail (Laplacian variance, result / dst)", sections["detail"]["ratio_to_dst_median"], t.detail, True),
        _check("68-landmark error / inter-ocular distance", sections["expression_pose"]["landmark_error_mean"],
               t.landmarks, False),
        _check("flicker inside the face, relative to dst, the provenance mark aside", flick, t.flicker, False, "",
               "against dst carrying the result's own invisible mark, which changes from frame to frame as the face "
               "moves and alone makes dst's face about 1.3x as unsteady; the figure against dst as it is is shown "
               "beside it"),
        (_check("background PSNR outside the face, the provenance mark aside", bg_merge, t.background_db, True, "dB",
                "against dst carrying the result's own invisible mark (which alone costs about 41 dB); "
                "100 dB means identical")
         if np.isfinite(bg_merge) else
         _check("background PSNR outside the face", bg, t.background_db, True, "dB", "100 dB means identical")),
    ]
    verdicts = [c["pass"] for c in checks if c["pass"] is not None]
    return {"pass": (all(verdicts) if verdicts else None), "checks": checks, **sections}
