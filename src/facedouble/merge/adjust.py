"""Detail adjustments of the predicted face before it is blended: the original merger's blur/sharpen,
denoise, bicubic degrade and motion blur.

Every function is pure: images are float32 [0, 1] of shape (H, W, 3) (or (H, W)) in and out, same shape,
no I/O. They work in face space (the aligned face the model predicted, square), and their strengths are
relative to the face's side, so an option looks the same at 96 px and at 256 px (after super resolution).

The order `adjust_face` applies them in follows a camera: first clean the model's output (denoise), then
set its sharpness (blur/sharpen), then add what dst's camera did to its own face (motion blur while the
face moves, then a loss of resolution: bicubic degrade).
"""

from __future__ import annotations

import math

import numpy as np

REF_SIDE = 128.0          # the face side the pixel sizes below are given for; they scale with the face
SHARPEN_GAIN = 2.0        # unsharp-mask gain at --sharpen 100
SHARPEN_SIGMA = 1.0       # px at REF_SIDE: the detail scale the unsharp mask boosts (gaussian mode)
BLUR_SIGMA = 4.0          # px at REF_SIDE: the blur's standard deviation at --sharpen -100
DEGRADE_MAX = 8.0         # --bicubic-degrade 100 downscales the face by this factor
MOTION_MAX = 0.25         # the motion-blur streak never exceeds this share of the face side


def _scale(img: np.ndarray) -> float:
    return max(img.shape[0], img.shape[1]) / REF_SIDE


def _odd(n: float) -> int:
    k = int(round(n))
    return k if k % 2 else k + 1


def _box(img: np.ndarray, width: float) -> np.ndarray:
    """Box (mean) blur of any real `width` >= 1: a blend of the two odd box sizes around it (monotonic in width)."""
    import cv2

    lo = max(1, int(math.floor(width)))
    lo = lo if lo % 2 else lo - 1
    t = float(np.clip((width - lo) / 2.0, 0.0, 1.0))
    a = img if lo == 1 else cv2.blur(img, (lo, lo), borderType=cv2.BORDER_REFLECT)
    if t <= 0.0:
        return a
    b = cv2.blur(img, (lo + 2, lo + 2), borderType=cv2.BORDER_REFLECT)
    return (1.0 - t) * a + t * b


def _gauss(img: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    if sigma <= 0.0:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def blur_sharpen(face: np.ndarray, amount: float, mode: str = "gaussian") -> np.ndarray:
    """Sharpen (amount > 0) or blur (amount < 0) a face: the original's blursharpen_amount.

    Args:
        face: (H, W, 3) float32 [0, 1].
        amount: -100..100. Positive: an unsharp mask, face + g (face - low-pass(face)) with g growing to
            SHARPEN_GAIN at 100. Negative: a low-pass of the face, its width growing to BLUR_SIGMA (at a
            128 px face) at -100.
        mode: the low-pass kernel: "box" (a square mean: boosts coarser detail and rings more) or
            "gaussian" (smooth, isotropic).

    Returns:
        (H, W, 3) float32 [0, 1].
    """
    if amount == 0:
        return face
    if mode not in ("box", "gaussian"):
        raise ValueError(f"sharpen mode must be box or gaussian, not {mode!r}")
    s = _scale(face)
    x = np.asarray(face, np.float32)
    if amount > 0:
        sigma = SHARPEN_SIGMA * s
        low = _box(x, _odd(sigma * math.sqrt(12.0))) if mode == "box" else _gauss(x, sigma)
        gain = SHARPEN_GAIN * min(amount, 100) / 100.0
        out = x + gain * (x - low)
    else:
        sigma = BLUR_SIGMA * s * min(-amount, 100) / 100.0
        out = _box(x, sigma * math.sqrt(12.0)) if mode == "box" else _gauss(x, sigma)  # equal variance
    return np.clip(out, 0.0, 1.0).astype(np.float32)


DENOISE_SIGMA_COLOUR = 0.08   # bilateral range sigma (of [0, 1] values): smooths differences below ~20 levels
DENOISE_SIGMA_SPACE = 1.5     # px at REF_SIDE: the bilateral filter's reach


def denoise(face: np.ndarray, power: float) -> np.ndarray:
    """Edge-keeping denoise of the face: repeated bilateral filtering (the original's image_denoise_power,
    which denoised the whole dst frame with median passes; here it cleans the predicted face, see the merge
    docs: a frame denoise would also change the background that must stay dst's own).

    Args:
        face: (H, W, 3) float32 [0, 1].
        power: 0..500; each 100 is one full pass, the rest blends in one more pass (50 = half of one pass).
            A pass averages each pixel with its neighbours (reach DENOISE_SIGMA_SPACE at a 128 px face)
            that differ from it by less than about DENOISE_SIGMA_COLOUR.

    Returns:
        (H, W, 3) float32 [0, 1]. Noise is smoothed; an edge (a difference well above the range sigma) is
        kept where a blur that flattens the skin as much would smear it.
    """
    import cv2

    if power <= 0:
        return face
    sigma = DENOISE_SIGMA_SPACE * _scale(face)
    x = np.ascontiguousarray(face, np.float32)
    full, frac = divmod(min(float(power), 500.0), 100.0)
    for _ in range(int(full)):
        x = cv2.bilateralFilter(x, -1, DENOISE_SIGMA_COLOUR, sigma)
    if frac > 0:
        x = (1.0 - frac / 100.0) * x + (frac / 100.0) * cv2.bilateralFilter(x, -1, DENOISE_SIGMA_COLOUR, sigma)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def degrade_factor(power: float) -> float:
    """The downscale factor of `bicubic_degrade`: 1 at 0, doubling every third of the range (8 at 100)."""
    return float(DEGRADE_MAX ** (np.clip(power, 0, 100) / 100.0))


def bicubic_degrade(face: np.ndarray, power: float) -> np.ndarray:
    """Soften the face to match a soft dst: downscale it by `degrade_factor(power)` (area average, as a
    lower-resolution camera would see it) and scale it back up bicubically.

    Args:
        face: (H, W, 3) float32 [0, 1].
        power: 0..100.

    Returns:
        (H, W, 3) float32 [0, 1].
    """
    import cv2

    if power <= 0:
        return face
    h, w = face.shape[:2]
    f = degrade_factor(power)
    small = (max(2, int(round(w / f))), max(2, int(round(h / f))))
    if small == (w, h):
        return face
    x = cv2.resize(np.asarray(face, np.float32), small, interpolation=cv2.INTER_AREA)
    return np.clip(cv2.resize(x, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0).astype(np.float32)


# -- motion ------------------------------------------------------------------------------------------------

def face_motion(prev: np.ndarray | None, cur: np.ndarray, nxt: np.ndarray | None) -> np.ndarray:
    """A face's movement in frame pixels per frame, from its landmarks in the previous, this and the next
    frame ((68, 2) each; None where the face is not in that frame): the central difference of the
    landmarks' centre, one-sided where only one neighbour has the face, zero where none has.

    Returns:
        (2,) float64 (dx, dy).
    """
    c = np.asarray(cur, np.float64).mean(0)
    p = None if prev is None else np.asarray(prev, np.float64).mean(0)
    n = None if nxt is None else np.asarray(nxt, np.float64).mean(0)
    if p is not None and n is not None:
        return (n - p) / 2.0
    if n is not None:
        return n - c
    if p is not None:
        return c - p
    return np.zeros(2)


def to_face_space(motion: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """A frame-space movement (2,) as seen in the face image of the frame-to-face `matrix` (2x3)."""
    return np.asarray(matrix, np.float64)[:, :2] @ np.asarray(motion, np.float64)


def line_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised streak of `length` px at `angle` radians (x right, y down), anti-aliased: (K, K) float32."""
    half = length / 2.0
    size = 2 * int(math.ceil(half)) + 3
    c = size // 2
    k = np.zeros((size, size), np.float32)
    n = max(2, int(math.ceil(length * 4)) + 1)
    dx, dy = math.cos(angle), math.sin(angle)
    for t in np.linspace(-half, half, n):
        x, y = c + t * dx, c + t * dy
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        k[y0, x0] += (1 - fx) * (1 - fy)
        k[y0, x0 + 1] += fx * (1 - fy)
        k[y0 + 1, x0] += (1 - fx) * fy
        k[y0 + 1, x0 + 1] += fx * fy
    return k / k.sum()


def motion_blur(face: np.ndarray, motion: np.ndarray | None, power: float) -> np.ndarray:
    """Blur the face along its movement, as a camera's shutter would (the original's motion_blur_power).

    Args:
        face: (H, W, 3) float32 [0, 1].
        motion: (2,) the face's movement per frame in face pixels (`to_face_space(face_motion(...))`), or None.
        power: 0..100: the streak is power% of one frame's movement (100: a shutter open the whole frame,
            50: the common 180-degree shutter), at most MOTION_MAX of the face side. Under a pixel: unchanged.

    Returns:
        (H, W, 3) float32 [0, 1].
    """
    import cv2

    if power <= 0 or motion is None:
        return face
    mx, my = float(motion[0]), float(motion[1])
    length = min(math.hypot(mx, my) * min(power, 100) / 100.0, MOTION_MAX * max(face.shape[:2]))
    if length < 1.0:
        return face
    kernel = line_kernel(length, math.atan2(my, mx))
    out = cv2.filter2D(np.asarray(face, np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def adjust_face(face: np.ndarray, *, sharpen: float = 0, sharpen_mode: str = "gaussian", denoise_power: float = 0,
                degrade: float = 0, motion_power: float = 0, motion: np.ndarray | None = None) -> np.ndarray:
    """Every adjustment in camera order: denoise, blur/sharpen, motion blur, bicubic degrade.

    Args:
        face: (H, W, 3) float32 [0, 1], the predicted face in face space.
        sharpen, sharpen_mode: see `blur_sharpen`; denoise_power: see `denoise`; degrade: see
            `bicubic_degrade`; motion_power, motion: see `motion_blur` (motion in face pixels per frame).

    Returns:
        (H, W, 3) float32 [0, 1]: `face` itself when every strength is 0.
    """
    out = denoise(face, denoise_power)
    out = blur_sharpen(out, sharpen, sharpen_mode)
    out = motion_blur(out, motion, motion_power)
    return bicubic_degrade(out, degrade)
