"""Augmentation of a face image, its mask and its landmarks together (pure functions, numpy/OpenCV).

A training sample is cut from a cached crop (the face at the model's face type and resolution, plus a margin
on each side) by one random similarity transform (rotation, scale, shift, optional horizontal flip). The
*target* is that cut; the *input* is the same cut through an extra smooth random warp, so the network learns
to undo small deformations instead of copying pixels. Landmarks go through the same transform, so masks drawn
from them line up with the target. Images are RGB uint8 HWC; points (N, 2) float32 (x, y) pixels.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..faces.align import transform_points


@dataclasses.dataclass(frozen=True)
class AugmentRanges:
    """Ranges of the random transform: rotation in degrees, scale and shift as fractions of the face size."""

    rotation: float = 10.0
    scale: float = 0.05
    shift: float = 0.05
    warp: bool = True
    flip: bool = True


def crop_margin(resolution: int, scale_mod: float = 0.0, ranges: AugmentRanges = AugmentRanges()) -> int:
    """Pixels of context cached on each side of a `resolution` face: enough that the largest rotation, the
    smallest scale (a negative src scale modifier shrinks the face, showing more around it), the largest shift
    and the warp's displacement never reach the border of the crop."""
    rot = np.deg2rad(ranges.rotation)
    smallest = (1.0 - ranges.scale) * (1.0 + min(0.0, scale_mod))
    half = (resolution / 2 + ranges.shift * resolution) * (np.cos(rot) + np.sin(rot)) / smallest
    return int(np.ceil(half - resolution / 2 + 0.05 * resolution))


def random_affine(rng: np.random.Generator, crop_size: int, out_size: int, ranges: AugmentRanges,
                  scale_mod: float = 0.0, flip: bool | None = None) -> np.ndarray:
    """2x3 transform from the cached crop (side `crop_size`, face centred) to an `out_size` sample:
    random rotation, scale (times 1 + scale_mod), shift and flip about the centre. `flip` None draws the
    flip at random (when `ranges.flip`); True or False imposes it (the caller chose it, e.g. to match yaw)."""
    angle = np.deg2rad(rng.uniform(-ranges.rotation, ranges.rotation))
    scale = (1.0 + rng.uniform(-ranges.scale, ranges.scale)) * (1.0 + scale_mod)
    tx, ty = rng.uniform(-ranges.shift, ranges.shift, 2) * out_size
    if flip is None:
        flip = ranges.flip and rng.random() < 0.5
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    a = np.array([[c, -s], [s, c]])
    if flip:
        a = a @ np.array([[-1.0, 0.0], [0.0, 1.0]])
    centre_in, centre_out = (crop_size - 1) / 2.0, (out_size - 1) / 2.0
    m = np.zeros((2, 3))
    m[:, :2] = a
    m[:, 2] = np.array([centre_out + tx, centre_out + ty]) - a @ np.array([centre_in, centre_in])
    return m


def random_warp_field(rng: np.random.Generator, size: int, strength: float = 1.0) -> np.ndarray:
    """A smooth random displacement, (size, size, 2) float32 pixels (dx, dy): random offsets on a coarse grid
    of 4, 6 or 8 cells (edges pinned), interpolated with a bicubic resize. The offsets' standard deviation
    is 2.5% of the face (`strength` scales it), enough to change an expression's shape, not the identity."""
    import cv2

    cells = int(rng.choice([4, 6, 8]))
    coarse = rng.normal(0.0, 0.025 * strength * size, (cells + 1, cells + 1, 2)).astype(np.float32)
    coarse[0, :] = coarse[-1, :] = coarse[:, 0] = coarse[:, -1] = 0.0
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


@functools.lru_cache(maxsize=8)
def _pixel_grid(size: int) -> np.ndarray:
    """(size, size, 2) float32 of each pixel's (x, y)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    grid = np.dstack([xs, ys])
    grid.setflags(write=False)
    return grid


def warp_sample(crop: np.ndarray, m: np.ndarray, out_size: int, field: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) cut from `crop` by `m`; the input also goes through the displacement `field` (or is the
    target itself when None). One resampling each (bilinear, edges replicated)."""
    import cv2

    target = cv2.warpAffine(crop, m, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if field is None:
        return target, target
    # Output pixel p reads the crop at inv(m) (p + d(p)): the affine and the warp in one remap.
    inv = cv2.invertAffineTransform(m)
    where = cv2.transform(_pixel_grid(out_size) + field, inv)
    inp = cv2.remap(crop, where, None, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return inp, target


def augment(crop: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, out_size: int,
            ranges: AugmentRanges = AugmentRanges(), scale_mod: float = 0.0, flip: bool | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One training sample from a cached crop: (input, target, landmarks in target pixels, the 2x3 matrix).
    `flip` as in `random_affine`."""
    m = random_affine(rng, crop.shape[0], out_size, ranges, scale_mod, flip)
    field = random_warp_field(rng, out_size) if ranges.warp else None
    inp, target = warp_sample(crop, m, out_size, field)
    return inp, target, transform_points(landmarks, m), m


def centre_affine(crop_size: int, out_size: int) -> np.ndarray:
    """The transform that cuts the centred face out of a cached crop with no augmentation."""
    off = (crop_size - out_size) / 2.0
    return np.array([[1.0, 0.0, -off], [0.0, 1.0, -off]])
