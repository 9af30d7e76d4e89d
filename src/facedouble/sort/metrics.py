"""Per-face quality and appearance metrics for sorting (pure: arrays in, numbers or arrays out).

Images are RGB uint8 HWC aligned faces; landmarks are (68, 2) float32 in the image's pixels. Metrics that
depend on scale are measured on a working copy `WORK_SIZE` pixels wide (`working_copy`), so faces saved at
256 or 512 px compare fairly and a 10,000-face set is quick to measure.

Conventions of the numbers:
- `sharpness`: variance of the Laplacian inside the face hull; higher is sharper.
- `motion_blur`: 0 (no directional blur) .. 1 (strongly smeared in one direction).
- `pose`: (yaw, pitch) in approximate degrees; yaw > 0 = the face turned towards the image's right,
  pitch > 0 = the face looking up. Estimated from the 68 aligned landmarks (roll is already removed by
  alignment); good for ordering, not a measurement.
- `color_histogram`: 3 x `HIST_BINS` bins (R, G, B), each channel summing to 1.
- `brightness_hue`: mean V (0..255) and circular mean hue (degrees 0..360) inside the face hull.
- `outside_fraction`: share of the aligned square that lies outside the source frame or is pure black.
"""

from __future__ import annotations

import numpy as np

WORK_SIZE = 256
HIST_BINS = 64

# Neutral nose length (bridge top to tip over inter-ocular distance) of a frontal face, and the change of
# that ratio per unit of sin(pitch); fitted by eye on frontal and tilted faces of the test media.
_NOSE_NEUTRAL = 0.60
_NOSE_PER_SIN_PITCH = 0.50


def working_copy(image: np.ndarray, landmarks: np.ndarray, size: int = WORK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The image resized (area filter) so its width is `size`, and the landmarks scaled with it.
    Images already `size` wide or smaller are returned as they are."""
    import cv2

    h, w = image.shape[:2]
    lm = np.asarray(landmarks, dtype=np.float32)
    if w <= size:
        return image, lm
    scale = size / w
    out = cv2.resize(image, (size, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return out, lm * scale


def face_region(landmarks: np.ndarray, shape: tuple[int, int], erode: int = 2) -> np.ndarray:
    """Boolean HW mask of the face hull (jaw and brows), shrunk by `erode` pixels so the hull's own
    edge against the background does not count as detail."""
    import cv2

    from ..faces.regions import hull_mask

    mask = (hull_mask(landmarks, shape) > 0.5).astype(np.uint8)
    if erode > 0:
        mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    if not mask.any():  # degenerate landmarks: fall back to the centre half of the image
        h, w = shape[:2]
        mask[h // 4:h - h // 4, w // 4:w - w // 4] = 1
    return mask.astype(bool)


def _gray(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return image.astype(np.float32)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def sharpness(image: np.ndarray, landmarks: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Variance of the Laplacian of the grey image inside the face hull (higher = sharper)."""
    import cv2

    gray = _gray(image)
    region = face_region(landmarks, gray.shape) if mask is None else mask
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=1)
    return float(lap[region].var())


def motion_blur(image: np.ndarray, landmarks: np.ndarray, mask: np.ndarray | None = None,
                angles: int = 16) -> float:
    """How strongly the face is smeared in one direction: 0 (none) .. 1.

    For each direction the ratio of second-derivative energy to first-derivative energy along it is a
    measure of the fine detail left in that direction, independent of how much structure the face has
    there (eyes and mouth make faces anisotropic by nature). Motion blur removes the fine detail along the
    motion only; defocus removes it in every direction. The score is 1 - min/max of that ratio."""
    import cv2

    gray = _gray(image)
    region = face_region(landmarks, gray.shape) if mask is None else mask
    d = [cv2.Sobel(gray, cv2.CV_32F, dx, dy, ksize=3)[region].astype(np.float64)
         for dx, dy in ((1, 0), (0, 1), (2, 0), (1, 1), (0, 2))]
    ix, iy, ixx, ixy, iyy = d
    j = np.array([[np.mean(ix * ix), np.mean(ix * iy)], [0.0, np.mean(iy * iy)]])
    j[1, 0] = j[0, 1]
    b = (ixx, ixy, iyy)
    q = np.array([[np.mean(p * r) for r in b] for p in b])
    theta = np.linspace(0.0, np.pi, angles, endpoint=False)
    c, s = np.cos(theta), np.sin(theta)
    first = c * c * j[0, 0] + 2 * c * s * j[0, 1] + s * s * j[1, 1]
    v = np.stack([c * c, 2 * c * s, s * s])
    second = np.einsum("in,ij,jn->n", v, q, v)
    ratio = second / np.maximum(first, 1e-9)
    if ratio.max() <= 0:
        return 1.0  # a flat image: no detail in any direction
    return float(np.clip(1.0 - ratio.min() / ratio.max(), 0.0, 1.0))


def pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in approximate degrees from 68 aligned landmarks.

    Yaw: how far the nose tip sits from the middle of the jaw line, over half the face width (> 0: turned
    towards the image's right). Pitch: the projected nose length (bridge top to tip) over the eye distance,
    which grows when the face looks down and shrinks when it looks up (> 0: looking up)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    left, right = lm[0], lm[16]
    half_width = max(np.linalg.norm(right - left) / 2.0, 1e-6)
    axis = (right - left) / (2.0 * half_width)  # unit vector along the face's left-right line
    offset = float((lm[30] - (left + right) / 2.0) @ axis)
    yaw = np.degrees(np.arcsin(np.clip(offset / half_width, -1.0, 1.0)))
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    iod = max(float(np.linalg.norm(eye_r - eye_l)), 1e-6)
    down = np.array([-axis[1], axis[0]])  # perpendicular to the eye line, pointing down the face
    nose = float((lm[30] - lm[27]) @ down) / iod
    pitch = np.degrees(np.arcsin(np.clip((_NOSE_NEUTRAL - nose) / _NOSE_PER_SIN_PITCH, -1.0, 1.0)))
    return float(yaw), float(pitch)


def color_histogram(image: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """(3 * bins,) float32: the R, G and B histograms of the whole aligned image, each summing to 1."""
    import cv2

    out = np.empty(3 * bins, np.float32)
    for ch in range(3):
        h = cv2.calcHist([np.ascontiguousarray(image[..., ch])], [0], None, [bins], [0, 256]).ravel()
        out[ch * bins:(ch + 1) * bins] = h / max(h.sum(), 1.0)
    return out


def histogram_features(hists: np.ndarray) -> np.ndarray:
    """(N, 3*bins) histograms -> (N, 3*bins) float32 rows whose dot product is the Bhattacharyya
    coefficient averaged over the three channels (1 = identical histograms, 0 = disjoint)."""
    h = np.clip(np.asarray(hists, dtype=np.float32), 0.0, None)
    return np.sqrt(h / 3.0).astype(np.float32)


def brightness_hue(image: np.ndarray, landmarks: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Mean brightness (HSV value, 0..255) and circular mean hue (degrees, 0..360) inside the face hull."""
    import cv2

    region = face_region(landmarks, image.shape[:2]) if mask is None else mask
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL)[region].astype(np.float64)
    value = float(hsv[:, 2].mean())
    angle = hsv[:, 0] * (2 * np.pi / 256.0)
    weight = hsv[:, 1] / 255.0  # grey pixels carry no hue
    s, c = float((np.sin(angle) * weight).sum()), float((np.cos(angle) * weight).sum())
    hue = float(np.degrees(np.arctan2(s, c)) % 360.0) if (s or c) else 0.0
    return value, hue


def outside_fraction(image: np.ndarray, matrix: np.ndarray | None = None,
                     source_size: tuple[int, int] | None = None, black_level: int = 4, grid: int = 128) -> float:
    """Share (0..1) of the aligned square that is not real picture: outside the source frame (from the
    frame-to-face matrix and the frame size, so it works whatever border the extractor drew: black or
    smeared edge pixels) or pure black (letterbox bars, frames padded with black).

    `matrix` maps frame pixels to this image's pixels; the frame test is sampled on a `grid` x `grid` lattice."""
    h, w = image.shape[:2]
    rgb_max = image.max(axis=2) if image.ndim == 3 else image
    black = rgb_max <= black_level
    if matrix is None or source_size is None or source_size[0] <= 0 or source_size[1] <= 0:
        return float(black.mean())
    ys = (np.arange(grid) + 0.5) * (h / grid)
    xs = (np.arange(grid) + 0.5) * (w / grid)
    gx, gy = np.meshgrid(xs, ys)
    m = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(m)[:2]
    fx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
    fy = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
    outside = (fx < 0) | (fy < 0) | (fx >= source_size[0]) | (fy >= source_size[1])
    black_sampled = black[np.minimum(gy.astype(int), h - 1), np.minimum(gx.astype(int), w - 1)]
    return float((outside | black_sampled).mean())


def face_metrics(image: np.ndarray, landmarks: np.ndarray, wanted: set[str] | frozenset[str], *,
                 matrix: np.ndarray | None = None, source_size: tuple[int, int] | None = None) -> dict:
    """The metrics named in `wanted` ('blur', 'motion', 'hist', 'hsv', 'black') for one aligned face,
    measured on its working copy. 'hist' is a float32 array, 'hsv' a (brightness, hue) pair, the others floats."""
    out: dict = {}
    if "black" in wanted:
        out["black"] = outside_fraction(image, matrix, source_size)
    rest = set(wanted) - {"black"}
    if not rest:
        return out
    work, lm = working_copy(image, landmarks)
    region = face_region(lm, work.shape[:2]) if rest & {"blur", "motion", "hsv"} else None
    if "blur" in rest:
        out["blur"] = sharpness(work, lm, region)
    if "motion" in rest:
        out["motion"] = motion_blur(work, lm, region)
    if "hsv" in rest:
        out["hsv"] = brightness_hue(work, lm, region)
    if "hist" in rest:
        out["hist"] = color_histogram(work)
    return out
