"""Blending the predicted face into the frame (pure functions).

Faces and masks live in "face space" (an aligned square, frame -> face by a 2x3 matrix `m`); they are
warped back only onto the frame region they cover (`face_roi`), never onto the whole frame, so the cost
of a merge does not grow with the frame size. Images are RGB; uint8 or float32 [0, 1] as each says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..faces.align import compose, invert, transform_points


@dataclass(frozen=True)
class Roi:
    """A frame rectangle: x0, y0 inclusive, x1, y1 exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def shift(self, m: np.ndarray) -> np.ndarray:
        """The frame -> face matrix `m` re-based so that ROI pixel (0, 0) is frame pixel (x0, y0)."""
        t = np.array([[1.0, 0.0, self.x0], [0.0, 1.0, self.y0]])
        return compose(m, t)


def face_roi(m: np.ndarray, size: int, frame_shape: tuple[int, ...], pad: int = 2) -> Roi:
    """The frame rectangle covered by the aligned `size` square of the frame -> face matrix `m`, clipped to
    the frame, with `pad` pixels to spare."""
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float64)
    pts = transform_points(corners, invert(m))
    h, w = frame_shape[:2]
    x0 = max(0, int(np.floor(pts[:, 0].min())) - pad)
    y0 = max(0, int(np.floor(pts[:, 1].min())) - pad)
    x1 = min(w, int(np.ceil(pts[:, 0].max())) + pad + 1)
    y1 = min(h, int(np.ceil(pts[:, 1].max())) + pad + 1)
    return Roi(x0, y0, max(x0, x1), max(y0, y1))


def scale_matrix(m: np.ndarray, size: int, percent: float) -> np.ndarray:
    """The frame -> face matrix that shows the face `percent` % larger (or smaller, < 0) in the frame,
    about the centre of the aligned square (the original's output face scale, -50..50)."""
    f = 1.0 + percent / 100.0
    c = size / 2.0
    s = np.array([[1.0 / f, 0.0, c - c / f], [0.0, 1.0 / f, c - c / f]])
    return compose(s, m)


def resize_matrix(m: np.ndarray, from_size: int, to_size: int) -> np.ndarray:
    """`m` for the same crop sampled at `to_size` instead of `from_size` pixels."""
    k = to_size / from_size
    return compose(np.array([[k, 0.0, 0.0], [0.0, k, 0.0]]), m)


def warp_to_roi(image: np.ndarray, m: np.ndarray, roi: Roi, *, interpolation: str = "cubic") -> np.ndarray:
    """Warp a face-space image (HW or HWC, any dtype cv2 accepts) onto the ROI of the frame; zeros where
    the face square does not reach. Sub-pixel accurate."""
    import cv2

    flags = (cv2.INTER_CUBIC if interpolation == "cubic" else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, roi.shift(m), (roi.width, roi.height), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def overlay(face: np.ndarray, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Alpha blend: face * mask + background * (1 - mask).

    Args:
        face, background: (H, W, 3) float32 [0, 1]. mask: (H, W) float32 [0, 1].
    Returns:
        (H, W, 3) float32.
    """
    m = np.asarray(mask, np.float32)[..., None]
    return (face * m + background * (1.0 - m)).astype(np.float32)


def composite(frame: np.ndarray, face: np.ndarray, face_m: np.ndarray, mask: np.ndarray, mask_m: np.ndarray,
              *, pad: int = 2) -> tuple[np.ndarray, Roi, np.ndarray]:
    """Put a face-space face onto a frame through a face-space mask, touching only the face's ROI.

    Args:
        frame: (H, W, 3) uint8 RGB; modified in place and returned.
        face: (s, s, 3) float32 [0, 1] and its frame -> face matrix `face_m`.
        mask: (S, S) float32 [0, 1] and its frame -> mask matrix `mask_m` (same square, maybe another size).

    Returns:
        (frame, roi, frame-space mask of the ROI (h, w) float32). Pixels where the warped mask is 0 keep
        their exact value.
    """
    roi = face_roi(mask_m, mask.shape[0], frame.shape, pad)
    if roi.empty:
        return frame, roi, np.zeros((0, 0), np.float32)
    m = np.clip(warp_to_roi(mask, mask_m, roi, interpolation="linear"), 0.0, 1.0)
    f = np.clip(warp_to_roi(np.ascontiguousarray(face, np.float32), face_m, roi, interpolation="cubic"), 0.0, 1.0)
    ys, xs = roi.slices()
    dst = frame[ys, xs]
    blended = overlay(f, dst.astype(np.float32) / 255.0, m)
    out = np.clip(blended * 255.0 + 0.5, 0, 255).astype(np.uint8)
    touched = m > 0
    dst[touched] = out[touched]
    return frame, roi, m


def poisson_solve(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """OpenCV's NORMAL_CLONE Poisson system, solved exactly on the whole given rectangle.

    The guidance field is the forward-difference gradient of `src` inside the mask (eroded by 3 pixels,
    as OpenCV does) and of `dst` outside it; the rectangle's outer ring is fixed to `dst` (Dirichlet), and
    the interior is solved with a type-I discrete sine transform.

    Args:
        src, dst: (h, w, 3) uint8 or float32 in 0..255 units. mask: (h, w) uint8 0/255.

    Returns:
        (h, w, 3) float32 in 0..255 units (not clipped).
    """
    import cv2
    import scipy.fft as sfft

    d = np.asarray(dst, np.float32)
    s = np.asarray(src, np.float32) * (mask[..., None] > 0)
    m = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=3).astype(np.float32)[..., None] / 255.0

    def diff(img: np.ndarray, kernel) -> np.ndarray:
        return cv2.filter2D(img, cv2.CV_32F, np.array(kernel, np.float32), borderType=cv2.BORDER_REFLECT_101)

    gx = diff(s, [[0, -1, 1]]) * m + diff(d, [[0, -1, 1]]) * (1 - m)
    gy = diff(s, [[0], [-1], [1]]) * m + diff(d, [[0], [-1], [1]]) * (1 - m)
    lap = diff(gx, [[-1, 1, 0]]) + diff(gy, [[-1], [1], [0]])
    bound = d.copy()
    bound[1:-1, 1:-1] = 0
    rhs = (lap - cv2.Laplacian(bound, cv2.CV_32F))[1:-1, 1:-1]
    h, w = rhs.shape[:2]
    out = d.copy()
    if h == 0 or w == 0:
        return out
    ky = 2 * np.cos(np.pi * np.arange(1, h + 1) / (h + 1)) - 2
    kx = 2 * np.cos(np.pi * np.arange(1, w + 1) / (w + 1)) - 2
    den = (ky[:, None] + kx[None, :])[..., None]
    out[1:-1, 1:-1] = sfft.idstn(sfft.dstn(rhs, type=1, axes=(0, 1)) / den, type=1, axes=(0, 1))
    return out


def seamless(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson blending (Perez et al. 2003) of `src` into `dst` where `mask` > 0.5: the system that
    `cv2.seamlessClone(src, dst, mask, centre of the mask's bounding box, cv2.NORMAL_CLONE)` solves,
    solved exactly and deterministically on the mask's bounding box only.

    (OpenCV 5.0's own seamlessClone is not used: on this machine it returns a different, wrong result on
    every second call and is off by several levels on the others; see tests/merge/test_merge_blend.py.)

    Args:
        src, dst: (H, W, 3) uint8 RGB, aligned pixel for pixel.
        mask: (H, W) float32 [0, 1] or bool/uint8.

    Returns:
        (H, W, 3) uint8: dst outside the mask's bounding box, the Poisson solution inside it. Without any
        mask pixel, dst.
    """
    import cv2

    mask = np.asarray(mask)
    binary = (mask > (127 if mask.dtype == np.uint8 else 0.5)).astype(np.uint8) * 255
    binary[0, :] = binary[-1, :] = 0  # OpenCV zeroes the mask's outer ring too
    binary[:, 0] = binary[:, -1] = 0
    x, y, w, h = cv2.boundingRect(binary)
    out = np.array(dst, np.uint8, copy=True)
    if w == 0 or h == 0:
        return out
    sub = poisson_solve(src[y:y + h, x:x + w], dst[y:y + h, x:x + w], binary[y:y + h, x:x + w])
    out[y:y + h, x:x + w] = np.clip(np.rint(sub), 0, 255).astype(np.uint8)
    return out


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float32 [0, 1] -> uint8 with rounding."""
    return np.clip(np.asarray(img, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8 -> float32 [0, 1]; float input is returned as float32."""
    img = np.asarray(img)
    return img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32, copy=False)
