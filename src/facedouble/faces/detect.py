"""Face detectors behind one interface, and a registry to pick them by name (`--detector`).

Every detector takes an RGB uint8 HWC image and returns `Detection`s with boxes in that image's pixels.
`make_detector(name)` builds one; detection runs on a copy scaled so its longest side is at most
`detect_size` (faces are still found and it is several times faster), and boxes are mapped back.

| name      | what                                                         | notes |
|-----------|--------------------------------------------------------------|-------|
| mediapipe | BlazeFace full-range (mediapipe 0.10.21, bundled model)        | fastest; finds small and turned faces |
| mt        | MTCNN cascade (faces/mtcnn.py, weights from facenet-pytorch)   | also gives five points |
| dlib      | dlib HOG + linear SVM                                          | frontal faces only |
| dlib-cnn  | dlib MMOD CNN                                                  | accurate but ~seconds per frame on a CPU |
| auto      | mediapipe, then MTCNN where mediapipe finds no (verified) face | chosen by benchmarks/extract.py |

`manual` is not a detector: rectangles come from the user (see extract/manual.py).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Callable, Optional, Protocol

import numpy as np

from ..errors import OptionError

DEFAULT_DETECT_SIZE = 640


@dataclasses.dataclass
class Detection:
    """One face found by a detector. `rect` is x0, y0, x1, y1 in image pixels (float32)."""

    rect: np.ndarray
    score: float
    detector: str
    # (K, 2) keypoints when the detector gives them; the first two are always the eye centres, the eye on
    # the image's left in an upright face first (MTCNN: eyes, nose tip, mouth corners; mediapipe: eyes, nose
    # tip, mouth centre, ear tragions).
    points: Optional[np.ndarray] = None

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.rect
        return float(max(0.0, x1 - x0) * max(0.0, y1 - y0))

    def transformed(self, m: np.ndarray) -> "Detection":
        """The detection with its box and points mapped by the 2x3 affine `m` (box: bounds of its corners)."""
        x0, y0, x1, y1 = self.rect
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64) @ m[:, :2].T + m[:, 2]
        rect = np.array([*corners.min(0), *corners.max(0)], np.float32)
        pts = None if self.points is None else (self.points @ m[:, :2].T + m[:, 2]).astype(np.float32)
        return Detection(rect, self.score, self.detector, pts)


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 HWC image, best first."""


# -- registry ---------------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[..., FaceDetector]] = {}


def register_detector(name: str) -> Callable[[Callable[..., FaceDetector]], Callable[..., FaceDetector]]:
    """Decorator: make a detector factory available as `--detector name`. Factories take keyword
    arguments `device` and `detect_size`."""

    def deco(factory: Callable[..., FaceDetector]) -> Callable[..., FaceDetector]:
        _REGISTRY[name] = factory
        return factory

    return deco


def detector_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def make_detector(name: str, *, device: str = "cpu", detect_size: int = DEFAULT_DETECT_SIZE) -> FaceDetector:
    """A ready detector by registry name (`auto` included)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise OptionError(f"--detector must be one of {', '.join(_REGISTRY)}, not {name!r}.") from None
    return factory(device=device, detect_size=detect_size)


# -- helpers ----------------------------------------------------------------------------------------

def downscaled(image: np.ndarray, longest: int) -> tuple[np.ndarray, float]:
    """The image scaled so that its longest side is at most `longest`, and the scale used (<= 1)."""
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, float(longest) / max(h, w)) if longest else 1.0
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _scaled_back(dets: list[Detection], scale: float) -> list[Detection]:
    if scale == 1.0:
        return dets
    m = np.array([[1 / scale, 0, 0], [0, 1 / scale, 0]])
    return [d.transformed(m) for d in dets]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# -- detectors --------------------------------------------------------------------------------------

class MediaPipeDetector:
    """BlazeFace full-range model bundled with mediapipe 0.10.21 (legacy solutions API)."""

    name = "mediapipe"

    def __init__(self, *, detect_size: int = DEFAULT_DETECT_SIZE, min_score: float = 0.5, full_range: bool = True,
                 **_: object) -> None:
        try:
            from mediapipe.python.solutions import face_detection
        except ImportError as e:
            raise OptionError(f"--detector mediapipe needs mediapipe 0.10.21 ({e}); install it with "
                              "`pip install --no-deps mediapipe==0.10.21` or choose --detector mt.") from None
        self._fd = face_detection.FaceDetection(min_detection_confidence=min_score, model_selection=1 if full_range else 0)
        self._lock = threading.Lock()
        self.detect_size = detect_size

    def detect(self, image: np.ndarray) -> list[Detection]:
        small, scale = downscaled(image, self.detect_size)
        h, w = small.shape[:2]
        with self._lock:  # a mediapipe graph is not re-entrant
            result = self._fd.process(np.ascontiguousarray(small))
        out = []
        for d in result.detections or []:
            b = d.location_data.relative_bounding_box
            rect = np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h], np.float32)
            kps = d.location_data.relative_keypoints
            pts = np.array([[k.x * w, k.y * h] for k in kps], np.float32) if len(kps) >= 2 else None
            out.append(Detection(rect, float(d.score[0]) if d.score else 0.0, self.name, pts))
        out.sort(key=lambda d: -d.score)
        return _scaled_back(out, scale)

    def close(self) -> None:
        self._fd.close()


class MTCNNDetector:
    name = "mt"

    def __init__(self, *, device: str = "cpu", detect_size: int = DEFAULT_DETECT_SIZE, min_face: int = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), **_: object) -> None:
        from ..device import parse_device
        from .mtcnn import MTCNN

        self._net = MTCNN(min_face=min_face, thresholds=thresholds, device=parse_device(device))
        self.detect_size = detect_size

    def detect(self, image: np.ndarray) -> list[Detection]:
        small, scale = downscaled(image, self.detect_size)
        r = self._net.detect(small)
        out = [Detection(b, float(s), self.name, p) for b, s, p in zip(r.boxes, r.scores, r.points)]
        return _scaled_back(out, scale)


class DlibHOGDetector:
    name = "dlib"

    def __init__(self, *, detect_size: int = DEFAULT_DETECT_SIZE, upsample: int = 1, **_: object) -> None:
        import dlib

        self._det = dlib.get_frontal_face_detector()
        self.detect_size, self.upsample = detect_size, upsample

    def detect(self, image: np.ndarray) -> list[Detection]:
        small, scale = downscaled(image, self.detect_size)
        rects, scores, _ = self._det.run(np.ascontiguousarray(small), self.upsample, 0.0)
        out = [Detection(np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float32), float(s), self.name)
               for r, s in zip(rects, scores)]
        out.sort(key=lambda d: -d.score)
        return _scaled_back(out, scale)


class DlibCNNDetector:
    name = "dlib-cnn"

    def __init__(self, *, detect_size: int = DEFAULT_DETECT_SIZE, upsample: int = 0, **_: object) -> None:
        import dlib

        from .models import DLIB_CNN, dlib_model

        self._det = dlib.cnn_face_detection_model_v1(str(dlib_model(DLIB_CNN)))
        self.detect_size, self.upsample = detect_size, upsample

    def detect(self, image: np.ndarray) -> list[Detection]:
        small, scale = downscaled(image, self.detect_size)
        found = self._det(np.ascontiguousarray(small), self.upsample)
        out = [Detection(np.array([d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1], np.float32),
                         float(d.confidence), self.name) for d in found]
        out.sort(key=lambda d: -d.score)
        return _scaled_back(out, scale)


class CascadeDetector:
    """Runs the next detector only when the previous ones found nothing."""

    def __init__(self, name: str, detectors: list[FaceDetector]) -> None:
        self.name, self.detectors = name, detectors

    def detect(self, image: np.ndarray) -> list[Detection]:
        for det in self.detectors:
            found = det.detect(image)
            if found:
                return found
        return []


register_detector("mediapipe")(MediaPipeDetector)
register_detector("mt")(MTCNNDetector)
register_detector("dlib")(DlibHOGDetector)
register_detector("dlib-cnn")(DlibCNNDetector)


# `auto`: the detectors tried in turn on a frame until one finds a face that passes verification
# (faces/find.py). Chosen with benchmarks/extract.py: mediapipe is ~10x faster than MTCNN and finds most
# faces; MTCNN finds the rest (e.g. hands over the mouth).
AUTO_PLAN = ("mediapipe", "mt")


def detector_plan(name: str) -> tuple[str, ...]:
    """Registry names of the detectors that `--detector name` runs, in order."""
    if name == "auto":
        return AUTO_PLAN
    if name not in _REGISTRY:
        raise OptionError(f"--detector must be one of auto, {', '.join(_REGISTRY)}, not {name!r}.")
    return (name,)


@register_detector("auto")
def _auto(*, device: str = "cpu", detect_size: int = DEFAULT_DETECT_SIZE, **_: object) -> FaceDetector:
    return CascadeDetector("auto", [make_detector(n, device=device, detect_size=detect_size) for n in AUTO_PLAN])
