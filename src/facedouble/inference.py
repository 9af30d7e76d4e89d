"""Loading a model for use (merge, live): a trained facedouble model folder, or a DFM file.

Both give the same interface (the merge's `Swapper` protocol): `resolution`, `face_type`, `learn_mask`,
`name`, and `swap_numpy(list of RGB uint8 res x res faces) -> (faces float32 [0, 1] HWC RGB, masks float32
HW)`. `crop_matrix(model, landmarks)` is the frame-to-face transform of the crop a model takes: facedouble
models take their own face type (`faces.align.face_matrix`); DFM models take the original tool's whole-face
crop (`faces.align.dfl_face_matrix`).

A DFM file is ONNX: first input `in_face:0` float32 NHWC [N, R, R, 3] in [0, 1], BGR; optional input
`morph_value:0` float32 [1] (morphable models: 0 = dst's face, 1 = src's); outputs `out_face_mask:0`
[N, R, R, 1] (dst's own face mask), `out_celeb_face:0` [N, R, R, 3] BGR, `out_celeb_face_mask:0` [N, R, R, 1].
R is read from the file. The mask used is the product of the two masks (where both agree there is face).
Whatever is made with either kind of model goes through the same provenance marking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError

DFL_CROP = "dfl-whole-face"
DFM_SUFFIXES = (".dfm",)
DEFAULT_MORPH = 0.75  # the companion app's default morph factor


@dataclass
class DFMModel:
    """A DFM file loaded with onnxruntime, ready to swap (see the module doc)."""

    path: Path
    session: Any
    resolution: int
    input_name: str
    morph_name: str | None
    fixed_batch: int | None
    morph_factor: float = DEFAULT_MORPH
    face_type: str = "whole-face"      # facedouble's nearest face type (mask sizes, forehead of hull masks)
    crop: str = DFL_CROP
    learn_mask: bool = True
    iteration: int = 0
    providers: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def morphable(self) -> bool:
        return self.morph_name is not None

    def swap_bgr(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """NHWC float32 BGR faces in [0, 1] -> the file's three outputs (dst mask, face BGR, face mask)."""
        faces = np.ascontiguousarray(faces, dtype=np.float32)
        if self.fixed_batch is not None and faces.shape[0] != self.fixed_batch:
            parts = [self.swap_bgr(faces[i:i + 1]) for i in range(faces.shape[0])]
            return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))  # type: ignore[return-value]
        feed = {self.input_name: faces}
        if self.morph_name is not None:
            feed[self.morph_name] = np.array([self.morph_factor], np.float32)
        try:
            outs = self.session.run(None, feed)
        except Exception as e:  # noqa: BLE001 - a broken graph is the file's fault; one sentence
            raise ModelError(f"{self.path} failed to run ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                             f"the DFM file is broken or not made for this runtime.") from None
        dst_mask, face, face_mask = (np.asarray(o, np.float32) for o in outs[:3])
        return dst_mask, face, face_mask

    def swap_numpy(self, faces: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if not faces:
            return [], []
        r = self.resolution
        for f in faces:
            if f.shape != (r, r, 3):
                raise ModelError(f"The DFM model {self.path.name} takes {r} x {r} faces, not {f.shape}.")
        x = np.stack(faces).astype(np.float32)[..., ::-1] / 255.0     # RGB uint8 -> BGR float
        dst_mask, face, face_mask = self.swap_bgr(x)
        face = np.clip(face[..., ::-1], 0.0, 1.0)                     # BGR -> RGB
        mask = np.clip(dst_mask[..., 0] * face_mask[..., 0], 0.0, 1.0)
        return [np.ascontiguousarray(f) for f in face], [np.ascontiguousarray(m) for m in mask]


def _providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = [p for p in ("CUDAExecutionProvider", "CoreMLExecutionProvider") if p in available]
    return wanted + ["CPUExecutionProvider"]


def load_dfm(path: str | Path, *, morph_factor: float = DEFAULT_MORPH, threads: int = 0) -> DFMModel:
    """A DFM file, checked: ONNX, first input named like `in_face` with shape [N, R, R, 3]."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"The model file {path} does not exist; give the path of a .dfm file.")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=_providers())
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{path} is not an ONNX model onnxruntime can load ({type(e).__name__}); give a .dfm "
                         f"file exported by facedouble (`export-onnx --format dfm`) or by the original tool.") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    first = inputs[0] if inputs else None
    shape = list(first.shape) if first is not None else []
    if first is None or "in_face" not in first.name:
        raise ModelError(f"{path} is ONNX but not a DFM model: its first input is "
                         f"{first.name if first is not None else 'missing'!r}, not in_face; export it as a DFM file.")
    if len(shape) != 4 or shape[3] != 3 or not isinstance(shape[1], int) or shape[1] != shape[2] or shape[1] < 16:
        raise ModelError(f"{path} has an in_face input of shape {shape}, not [N, R, R, 3]; it is not a DFM "
                         f"model facedouble can run.")
    if len(outputs) < 3:
        raise ModelError(f"{path} has {len(outputs)} output(s), not the three of a DFM model (dst mask, face, "
                         f"face mask); export it as a DFM file.")
    morph = next((i.name for i in inputs[1:] if "morph_value" in i.name), None)
    fixed = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return DFMModel(path, session, int(shape[1]), first.name, morph, fixed, float(morph_factor),
                    providers=session.get_providers())


def is_dfm(path: str | Path | None) -> bool:
    return path is not None and Path(path).suffix.lower() in DFM_SUFFIXES


def load_model(model: str | Path | None = None, *, model_file: str | Path | None = None, device: str = "auto",
               name: str | None = None, morph_factor: float | None = None):
    """The model to swap with: `model_file` (a .dfm file) when given, else the trained model in the folder
    `model` (the newest, or `name`). A .dfm path given as `model` is loaded as a DFM file too. `morph_factor`
    (0..1) is used by morphable models (amp, morphable DFM files); None: 1 for an amp model folder, 0.75 for a
    DFM file."""
    if model_file is None and is_dfm(model) and Path(model).is_file():  # type: ignore[arg-type]
        model_file = model
    if model_file is not None:
        p = Path(model_file)
        if p.is_dir():
            raise ModelError(f"--model-file {p} is a folder; give a .dfm file, or use --model for a model folder.")
        return load_dfm(p, morph_factor=DEFAULT_MORPH if morph_factor is None else morph_factor)
    if model is None:
        raise ModelError("No model given; give --model FOLDER (a trained model) or --model-file FILE.dfm.")
    try:
        from .train.checkpoint import load_swapper
    except ImportError:
        raise ModelError("Loading models needs facedouble.train.checkpoint, which is not installed; reinstall "
                         "facedouble.") from None
    return load_swapper(Path(model), device=device, name=name, morph_factor=morph_factor)


def crop_matrix(model, landmarks: np.ndarray, size: int | None = None) -> np.ndarray:
    """2x3 frame-to-face transform of the crop `model` takes (at `size`, default the model's resolution)."""
    from .faces.align import dfl_face_matrix, face_matrix

    size = int(size or model.resolution)
    if getattr(model, "crop", None) == DFL_CROP:
        return dfl_face_matrix(landmarks, size)
    return face_matrix(landmarks, model.face_type, size)


__all__ = ["DFMModel", "crop_matrix", "is_dfm", "load_dfm", "load_model"]
