"""Faces of one frame: detection (retried on the frame turned 90, 180 and 270 degrees when nothing is
found upright) and 68 landmarks. Everything in frame pixels of the frame as given.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from . import align
from .detect import DEFAULT_DETECT_SIZE, Detection, detector_plan, make_detector
from .landmarks import Landmarker, default_landmarker

ROTATIONS = (90, 180, 270)


@dataclasses.dataclass
class FoundFace:
    rect: np.ndarray          # (4,) float32 x0, y0, x1, y1: the detector's (or user's) box, frame pixels
    landmarks: np.ndarray     # (68, 2) float32, frame pixels
    score: float
    detector: str             # registry name of the detector that found it ("manual" for a user rect)
    rotation: int = 0         # the frame was turned clockwise by this many degrees when it was found
    verified: float = 1.0     # the verifier's margin, >= 1 for a face (1.0 for user rectangles)

    @property
    def size(self) -> float:
        """Face size in pixels (side of the 'full' aligned square in the frame)."""
        return 1.0 / align.matrix_scale(align.face_matrix(self.landmarks, "full", 1))

    @property
    def centre(self) -> np.ndarray:
        return self.landmarks.mean(0)


def rotation_matrix(angle: int, width: int, height: int) -> np.ndarray:
    """2x3 map from pixel (x, y) of a W x H image to the image turned clockwise by 90/180/270 degrees."""
    w, h = width - 1, height - 1
    return {
        0: np.array([[1.0, 0, 0], [0, 1, 0]]),
        90: np.array([[0.0, -1, h], [1, 0, 0]]),
        180: np.array([[-1.0, 0, w], [0, -1, h]]),
        270: np.array([[0.0, 1, 0], [-1, 0, w]]),
    }[angle]


def rotate(image: np.ndarray, angle: int) -> np.ndarray:
    import cv2

    if angle == 0:
        return image
    code = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}[angle]
    return cv2.rotate(image, code)


class FaceFinder:
    """The detectors of `--detector`, the landmarker and the face verifier, per process.

    `detector` is a registry name (`auto` runs mediapipe, then MTCNN) or "manual" (no detector: only
    `in_rects` works). A detection counts only if the face cut out upright from its landmarks passes the
    verifier (faces/mtcnn.py FaceVerifier); with `verify=False` every detection counts."""

    def __init__(self, detector: str = "auto", *, device: str = "cpu", detect_size: int = DEFAULT_DETECT_SIZE,
                 landmarker: Optional[Landmarker] = None, rotations: bool = True, verify: bool = True) -> None:
        self.detector_name = detector
        names = () if detector == "manual" else detector_plan(detector)
        self.detectors = [make_detector(n, device=device, detect_size=detect_size) for n in names]
        self.landmarker = landmarker or default_landmarker()
        self.rotations = rotations
        self.verifier = None
        if verify and self.detectors:
            from .mtcnn import FaceVerifier

            self.verifier = FaceVerifier(device="cpu")

    def _faces(self, image: np.ndarray, dets: list[Detection], angle: int, back: np.ndarray,
               rejected: Optional[list[FoundFace]] = None) -> list[FoundFace]:
        out = []
        for d in dets:
            eyes = None if d.points is None else d.points[:2]
            lm = self.landmarker(image, d.rect, d.detector, eyes=eyes)
            margin = 1.0 if self.verifier is None else self.verifier(image, lm)
            det = d.transformed(back)
            face = FoundFace(det.rect, align.transform_points(lm, back), d.score, d.detector, angle, margin)
            if margin >= 1.0:
                out.append(face)
            elif rejected is not None:
                rejected.append(face)
        return out

    def find(self, image: np.ndarray, *, with_rejected: bool = False) -> list[FoundFace]:
        """Faces in an RGB uint8 frame, largest first. The detectors are tried in turn until one finds a
        face; when none does, the first is tried again on the frame turned 90, 180 and 270 degrees.

        `with_rejected`: also return the upright detections the verifier turned down (`verified` < 1), after
        the faces; a dst sequence keeps one when it continues a face of the previous frame (e.g. a face
        half out of the frame)."""
        faces: list[FoundFace] = []
        rejected: list[FoundFace] = []
        identity = rotation_matrix(0, 1, 1)
        for det in self.detectors:
            faces = self._faces(image, det.detect(image), 0, identity, rejected)
            if faces:
                break
        if not faces and self.rotations and self.detectors:
            h, w = image.shape[:2]
            for angle in ROTATIONS:
                turned = np.ascontiguousarray(rotate(image, angle))
                dets = self.detectors[0].detect(turned)
                if dets:
                    faces = self._faces(turned, dets, angle, align.invert(rotation_matrix(angle, w, h)))
                    if faces:
                        break
        faces.sort(key=lambda f: -f.size)
        if with_rejected and not faces:
            rejected.sort(key=lambda f: -f.size)
            return rejected
        return faces

    def in_rects(self, image: np.ndarray, rects) -> list[FoundFace]:
        """Faces inside user rectangles (x0, y0, x1, y1 each), in the given order; not verified."""
        out = []
        for r in rects:
            rect = np.asarray(r, np.float32).reshape(4)
            lm = self.landmarker(image, rect, "manual")
            out.append(FoundFace(rect, lm, 1.0, "manual", 0))
        return out
