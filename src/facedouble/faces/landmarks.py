"""68 face landmarks (iBUG 300-W order) with dlib's shape predictor, from any detector's box.

dlib's predictor was trained on the boxes of dlib's HOG detector, and it starts from a mean upright face
placed in the box, so both the box convention and in-plane rotation matter. Landmarks are found in two
passes:

1. the detector's box is converted to a HOG-like box (per-detector offsets and scale, measured against HOG
   boxes on the sample media with `benchmarks/extract.py --calibrate`) and the predictor runs on it;
2. the face is cut out upright at a fixed scale from the similarity transform of those landmarks, the
   predictor runs again on the HOG-like box of the upright crop, and the points are mapped back.

Pass 2 makes the result nearly independent of the detector and handles tilted heads. Points are float32
(68, 2) in frame pixels.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from . import align

NAME = "dlib68"

# Detector box -> HOG-like box: centre shift (fractions of box width, height) and side (x sqrt(w*h)).
# Medians over 160 faces of the sample media (WolfgangLanger_Pexels.mp4, single_face.mp4, three photos).
BOX_TO_HOG: dict[str, tuple[float, float, float]] = {
    "dlib": (0.0, 0.0, 1.0),
    "mediapipe": (0.0087, -0.0222, 0.910),
    "mt": (0.0247, 0.0631, 0.892),
    "dlib-cnn": (0.0212, 0.0909, 1.127),
    "manual": (0.0179, -0.0846, 1.003),  # a box drawn around the face from the brows to the chin, ear to ear
                                         # (fitted on the bounding boxes of the 68 landmarks)
}
# HOG-like box from landmarks, in the unit square of align.face_matrix(lm, "full", 1): centre and side.
HOG_FROM_UNIT = (0.5033, 0.5767, 0.7305)
# Side of the HOG-like box in the upright crop of pass 2, in pixels.
CROP_BOX = 160.0


def hog_box(rect: np.ndarray, detector: str) -> np.ndarray:
    """A detector's x0, y0, x1, y1 box converted to the square box dlib's predictor expects."""
    dx, dy, k = BOX_TO_HOG.get(detector, BOX_TO_HOG["manual"])
    x0, y0, x1, y1 = (float(v) for v in rect)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    cx, cy, side = (x0 + x1) / 2 + dx * w, (y0 + y1) / 2 + dy * h, k * np.sqrt(w * h)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


def box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """The axis-aligned HOG-like box of a face with these landmarks (frame pixels)."""
    m = align.face_matrix(landmarks, "full", 1)
    cx, cy = align.transform_points(np.array([HOG_FROM_UNIT[:2]]), align.invert(m))[0]
    side = HOG_FROM_UNIT[2] / align.matrix_scale(m)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


class Landmarker:
    """dlib's 68-point shape predictor with the two-pass fitting described above. Thread-safe."""

    name = NAME

    def __init__(self) -> None:
        import dlib

        from .models import DLIB_68, dlib_model

        self._dlib = dlib
        self._sp = dlib.shape_predictor(str(dlib_model(DLIB_68)))
        self._lock = threading.Lock()

    def _predict(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        rect = self._dlib.rectangle(x0, y0, max(x1 - 1, x0 + 1), max(y1 - 1, y0 + 1))
        with self._lock:
            shape = self._sp(image, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def _fit_upright(self, image: np.ndarray, to_unit: np.ndarray) -> np.ndarray:
        """Run the predictor on an upright crop. `to_unit` maps frame pixels to a unit space where the
        HOG-like box is centred at HOG_FROM_UNIT[:2] with side HOG_FROM_UNIT[2]."""
        import cv2

        k = CROP_BOX / HOG_FROM_UNIT[2]
        half = CROP_BOX  # the crop is twice the box: margin on every side
        cx, cy = HOG_FROM_UNIT[0] * k, HOG_FROM_UNIT[1] * k
        to_crop = align.compose(np.array([[k, 0, half - cx], [0, k, half - cy]]), to_unit)
        size = int(2 * half)
        crop = cv2.warpAffine(image, to_crop, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        box = np.array([half - CROP_BOX / 2, half - CROP_BOX / 2, half + CROP_BOX / 2, half + CROP_BOX / 2])
        pts = self._predict(np.ascontiguousarray(crop), box)
        return align.transform_points(pts, align.invert(to_crop))

    def refine(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Pass 2: re-fit on an upright crop placed from `landmarks`."""
        return self._fit_upright(image, align.face_matrix(landmarks, "full", 1))

    def __call__(self, image: np.ndarray, rect: np.ndarray, detector: str = "manual", *,
                 eyes: np.ndarray | None = None, passes: int = 2) -> np.ndarray:
        """68 landmarks (float32, frame pixels) of the face in `rect` (x0, y0, x1, y1) found by `detector`.

        `eyes` (2, 2), when the detector gives them (image-left eye of an upright face first), set the
        head's tilt for pass 1, so strongly tilted faces are fitted upright from the start."""
        image = np.ascontiguousarray(image)
        box = hog_box(rect, detector)
        angle = 0.0
        if eyes is not None:
            d = np.asarray(eyes, np.float64)[1] - np.asarray(eyes, np.float64)[0]
            angle = float(np.arctan2(d[1], d[0]))
        if abs(angle) < np.deg2rad(10):
            lm = self._predict(image, box)
        else:
            # unit space of the box, rotated by the eye line: box centre -> HOG_FROM_UNIT centre
            side = float(box[2] - box[0]) / HOG_FROM_UNIT[2]
            c, s = np.cos(-angle) / side, np.sin(-angle) / side
            bx, by = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            rot = np.array([[c, -s, 0.0], [s, c, 0.0]])
            rot[:, 2] = np.array(HOG_FROM_UNIT[:2]) - rot[:, :2] @ np.array([bx, by])
            lm = self._fit_upright(image, rot)
        for _ in range(passes - 1):
            lm = self.refine(image, lm)
        return lm


@lru_cache(maxsize=1)
def default_landmarker() -> Landmarker:
    return Landmarker()


def landmarks_in_rect(frame_rgb: np.ndarray, rect) -> np.ndarray:
    """68 landmarks (float32 (68, 2), frame pixels) of the face inside a user-drawn rectangle
    x0, y0, x1, y1 (brows to chin, like a detector's box). For the browser UI's manual mode."""
    from ..errors import OptionError

    r = np.asarray(rect, dtype=np.float32).reshape(-1)
    if r.shape != (4,) or not np.all(np.isfinite(r)) or r[2] - r[0] < 4 or r[3] - r[1] < 4:
        raise OptionError(f"A face rectangle must be four numbers x0, y0, x1, y1 with x1 > x0 and y1 > y0, not {list(rect)}.")
    return default_landmarker()(frame_rgb, r, "manual")
