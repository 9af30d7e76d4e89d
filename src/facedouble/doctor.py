"""What is installed and usable: the version, the device, and each optional component."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from . import __version__


@dataclass(frozen=True)
class Component:
    name: str
    purpose: str
    ok: bool
    detail: str


# (name shown, purpose, module to import)
COMPONENTS = (
    ("PyAV", "video and audio I/O", "av"),
    ("OpenCV", "image operations, Poisson blending", "cv2"),
    ("PyTorch", "training and merging", "torch"),
    ("dlib", "HOG/CNN detectors, 68 landmarks, identity", "dlib"),
    ("dlib models", "landmark and identity model files", None),
    ("MTCNN weights", "mt detector (facenet-pytorch's bundled P/R/O-Net)", None),
    ("mediapipe", "fast detector, 478-point face mesh", "mediapipe"),
    ("nudenet", "explicit-content screen", "nudenet"),
    ("onnxruntime", "explicit-content screen, ONNX export check", "onnxruntime"),
    ("PyWavelets", "invisible watermark", "pywt"),
    ("c2pa", "content credentials (signing)", "c2pa"),
)


def package_folder(module: str) -> str | None:
    """Folder of an installed package without importing it (some packages fail at import)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _check(module: str | None, name: str) -> tuple[bool, str]:
    from pathlib import Path

    if name == "dlib models":
        folder = package_folder("face_recognition_models")
        ok = bool(folder) and (Path(folder) / "models" / "shape_predictor_68_face_landmarks.dat").exists()
        return ok, folder or "face-recognition-models is not installed"
    if name == "MTCNN weights":
        folder = package_folder("facenet_pytorch")
        ok = bool(folder) and (Path(folder) / "data" / "pnet.pt").exists()
        return ok, folder or "facenet-pytorch is not installed (pip install --no-deps facenet-pytorch==2.6.0)"
    try:
        mod = importlib.import_module(module)  # type: ignore[arg-type]
    except Exception as e:  # noqa: BLE001 - any import failure is reported, not raised
        return False, f"{type(e).__name__}: {e}".splitlines()[0][:160]
    return True, str(getattr(mod, "__version__", "installed"))


def components() -> list[Component]:
    return [Component(name, purpose, *_check(module, name)) for name, purpose, module in COMPONENTS]


def summary() -> dict:
    from .device import best_device, describe

    return {
        "version": __version__,
        "device": describe(best_device()),
        "components": [c.__dict__ for c in components()],
    }
