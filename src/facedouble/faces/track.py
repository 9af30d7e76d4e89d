"""Face tracks over a frame sequence (pure): landmark smoothing, cut detection and target choice.

Smoothing is a One-Euro filter (Casiez, Roussel, Vogel, CHI 2012): a low-pass filter whose cut-off rises
with speed, so a still face stops jittering while a fast-moving one is followed without lag. Each landmark
has its own cut-off (x and y share it), set by that point's speed measured in face sizes per second, so
the filter behaves the same for small and large faces and a mouth that opens fast is not held back by a
still head.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from .detect import iou


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclasses.dataclass
class OneEuroFilter:
    """One-Euro filter over an array of points. `min_cutoff` (Hz) sets smoothing at rest (lower = smoother);
    `beta` how fast the cut-off rises with speed (higher = less lag); speeds are in face sizes per second."""

    min_cutoff: float = 1.0
    beta: float = 2.0
    d_cutoff: float = 1.0
    rate: float = 30.0          # frames per second of the sequence
    _x: Optional[np.ndarray] = None
    _dx: Optional[np.ndarray] = None

    def reset(self) -> None:
        self._x, self._dx = None, None

    def __call__(self, points: np.ndarray, face_size: float, dt_frames: float = 1.0) -> np.ndarray:
        """Filter (N, 2) points of the next frame, `dt_frames` frames after the previous one."""
        x = np.asarray(points, np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros(len(x))
            return x.astype(np.float32)
        dt = max(dt_frames, 1e-3) / self.rate
        speed = np.linalg.norm(x - self._x, axis=-1) / max(face_size, 1e-6) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * speed + (1 - a_d) * self._dx
        a = _alpha_array(self.min_cutoff + self.beta * self._dx, dt)[:, None]
        self._x = a * x + (1 - a) * self._x
        return self._x.astype(np.float32)


def _alpha_array(cutoff: np.ndarray, dt: float) -> np.ndarray:
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A 32x18 grey thumbnail (float32) used to detect cuts between frames."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    h, w = grey.shape[:2]
    if w > 256:   # two cheap halvings first; INTER_AREA over the whole frame costs more
        grey = cv2.resize(grey, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    return cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)


def is_cut(previous: Optional[np.ndarray], current: np.ndarray, threshold: float = 30.0) -> bool:
    """A scene change between two thumbnails: mean absolute difference over `threshold` grey levels."""
    if previous is None:
        return False
    return float(np.abs(previous - current).mean()) > threshold


class TargetTracker:
    """Keeps one face per frame for the target person of a dst sequence.

    mode "largest": the largest face of each frame; "track": the face that continues the previous frame's
    target (box overlap), else the largest; "reference": the face nearest to a reference embedding (closer
    than `max_distance`), continued by box overlap between identity checks."""

    def __init__(self, mode: str = "track", *, reference: Optional[np.ndarray] = None, max_distance: float = 0.6,
                 min_overlap: float = 0.3) -> None:
        self.mode, self.reference = mode, reference
        self.max_distance, self.min_overlap = max_distance, min_overlap
        self.previous_rect: Optional[np.ndarray] = None

    def reset(self) -> None:
        self.previous_rect = None

    def continuing(self, rects: list[np.ndarray]) -> Optional[int]:
        """Index of the box that continues the previous target, or None."""
        if self.previous_rect is None or not rects:
            return None
        overlaps = [iou(self.previous_rect, r) for r in rects]
        best = int(np.argmax(overlaps))
        return best if overlaps[best] >= self.min_overlap else None

    def choose(self, rects: list[np.ndarray], sizes: list[float], distances: Optional[list[float]] = None) -> Optional[int]:
        """Index of the target among this frame's faces (None: the target is not in this frame).

        `distances` (reference mode) are identity distances to the reference, or None where not computed;
        a face that continues the previous target keeps being chosen without a fresh distance."""
        if not rects:
            self.previous_rect = None
            return None
        cont = self.continuing(rects)
        if self.mode == "largest":
            pick = int(np.argmax(sizes))
        elif self.mode == "reference":
            pick = None
            if distances is not None:
                known = [(d, i) for i, d in enumerate(distances) if d is not None]
                if cont is not None and distances[cont] is None:
                    pick = cont
                elif known:
                    d, i = min(known)
                    pick = i if d < self.max_distance else None
            elif cont is not None:
                pick = cont
        else:
            pick = cont if cont is not None else int(np.argmax(sizes))
        self.previous_rect = None if pick is None else np.asarray(rects[pick], np.float32)
        return pick
