"""Identity: a 128-d embedding per face (dlib's ResNet face recognition model v1).

Two faces of the same person are usually closer than SAME_PERSON (Euclidean distance), other people
farther. One embedding costs ~75-100 ms on one CPU core, which is why the extraction stage computes it
once per face track every few frames (see ExtractConfig.identity_every).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import InputError, NoFaceError
from ..imagefile import decode_file

NAME = "dlib-resnet-v1"
SAME_PERSON = 0.6


class IdentityEncoder:
    name = NAME

    def __init__(self) -> None:
        import dlib

        from .models import DLIB_RESNET, dlib_model

        self._dlib = dlib
        self._net = dlib.face_recognition_model_v1(str(dlib_model(DLIB_RESNET)))
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
        """(128,) float32 embedding of the face with these 68 landmarks (frame pixels) in an RGB uint8 image."""
        dlib = self._dlib
        lm = np.asarray(landmarks68, dtype=np.float64)
        x0, y0 = np.floor(lm.min(0)).astype(int)
        x1, y1 = np.ceil(lm.max(0)).astype(int)
        shape = dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)),
                                           [dlib.point(int(round(x)), int(round(y))) for x, y in lm])
        with self._lock:
            chip = dlib.get_face_chip(np.ascontiguousarray(image), shape, size=150, padding=0.25)
            vec = self._net.compute_face_descriptor(chip)
        return np.asarray(vec, dtype=np.float32)


@lru_cache(maxsize=1)
def default_encoder() -> IdentityEncoder:
    return IdentityEncoder()


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two embeddings; < SAME_PERSON means the same person."""
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))


def same_person(a: np.ndarray, b: np.ndarray) -> bool:
    return face_distance(a, b) < SAME_PERSON


def read_rgb(path: str | Path) -> np.ndarray:
    """Any image file as RGB uint8 HWC (grey-scale, 16-bit and alpha converted)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise InputError(f"Image {path} does not exist; give the path of a photo.")
    arr = decode_file(path)
    if arr is None:
        raise InputError(f"{path} is not a readable image; give a JPEG or PNG photo.")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def reference_embedding(path: str | Path, *, detector: str = "auto", device: str = "cpu") -> np.ndarray:
    """The embedding of the largest face in a reference photo (for --reference)."""
    from .find import FaceFinder

    image = read_rgb(path)
    faces = FaceFinder(detector if detector != "manual" else "auto", device=device).find(image)
    if not faces:
        raise NoFaceError(f"No face found in the reference photo {path}; give a photo with one clear, frontal face.")
    best = max(faces, key=lambda f: f.size)
    return default_encoder()(image, best.landmarks)
