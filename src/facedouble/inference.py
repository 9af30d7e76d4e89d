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
    """A DFM file, checked: ONNX, first input named like `in_face` with shape [N, R, R, 3]. `threads`: the
    session's own intra-op threads, which then sleep rather than spin between runs (0: onnxruntime's default,
    one per core, spinning; right for a model that has the CPU to itself)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"The model file {path} does not exist; give the path of a .dfm file.")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
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
        from .train.swapper import load_swapper
    except ImportError:
        raise ModelError("Loading models needs facedouble.train.checkpoint, which is not installed; reinstall "
                         "facedouble.") from None
    return load_swapper(Path(model), device=device, name=name, morph_factor=morph_factor)


class CpuRunner:
    """A facedouble (torch) model run one face at a time on a CPU as fast as that goes, for live use: its own
    copy of the network in channels-last memory format (oneDNN's fast layout), bf16 autocast where the CPU has
    native bf16 (as `Swapper` does), traced and frozen by TorchScript so that the weights are cast to bf16 once
    and not on every face (the casts were ~13% of a 192 px face's time; traced: ~0.8x the CPU time of the
    eager model on this project's 2-core CPU). The output is the Swapper's to bf16 rounding (face identical,
    mask within 0.25 of a level of 255 for cpu192). A morphable model's morph factor is an input of the traced
    graph, read from the wrapped model for every face. Where tracing fails the eager copy runs. Attributes
    other than `swap_numpy` are the wrapped model's."""

    def __init__(self, swapper, *, trace: bool = True):
        import copy

        import torch

        self.swapper = swapper
        self._net = copy.deepcopy(swapper.model).eval().to(memory_format=torch.channels_last)
        self._amp = getattr(swapper, "_amp", None)
        self._morphable = bool(getattr(swapper, "morphable", False))
        self._has_mask = True
        self._traced = None
        if trace:
            try:
                self._traced = self._trace()
            except Exception:  # noqa: BLE001 - an architecture TorchScript cannot trace runs eagerly
                self._traced = None

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "swapper":  # copies and pickles look these up before __init__
            raise AttributeError(name)
        return getattr(self.swapper, name)

    def _autocast(self):
        import torch

        return torch.autocast("cpu", dtype=self._amp or torch.float32, enabled=self._amp is not None)

    def _trace(self):
        import warnings

        import torch

        r = int(self.swapper.resolution)
        x = torch.zeros(1, 3, r, r).contiguous(memory_format=torch.channels_last)
        morph = torch.tensor(float(getattr(self.swapper, "morph_factor", 1.0)))
        net, morphable = self._net, self._morphable
        with torch.inference_mode(), self._autocast():
            self._has_mask = (net.swap(x, morph=morph) if morphable else net.swap(x))[1] is not None
        has_mask = self._has_mask

        class Swap(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, faces, morph):
                face, mask = self.net.swap(faces, morph=morph) if morphable else self.net.swap(faces)
                return (face.float(), mask.float()) if has_mask else (face.float(), face[:, :1].float())

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript announces its deprecation and the tracer its caveats
            with torch.inference_mode(), self._autocast():
                traced = torch.jit.freeze(torch.jit.trace(Swap().eval(), (x, morph), check_trace=False))
            with torch.inference_mode():
                for _ in range(2):   # the profiling executor optimises on the first runs
                    traced(x, morph)
        return traced

    def swap_numpy(self, faces: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        import torch

        if not faces:
            return [], []
        r = int(self.swapper.resolution)
        for f in faces:
            if f.shape != (r, r, 3):
                raise ModelError(f"The model takes {r} x {r} RGB faces, not {f.shape}.")
        x = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float().div_(255.0)
        x = x.contiguous(memory_format=torch.channels_last)
        morph = float(getattr(self.swapper, "morph_factor", 1.0))
        with torch.inference_mode():
            if self._traced is not None and len(faces) == 1:   # traced for one face at a time
                face, mask = self._traced(x, torch.tensor(morph))
                mask = mask if self._has_mask else None
            else:
                with self._autocast():
                    face, mask = self._net.swap(x, morph=morph) if self._morphable else self._net.swap(x)
            face = face.float().clamp(0, 1).permute(0, 2, 3, 1).numpy()
            if mask is None:
                masks = [np.asarray(self.swapper._mask, np.float32) for _ in faces]
            else:
                masks = list(mask.float().clamp(0, 1)[:, 0].numpy())
        return [np.ascontiguousarray(f, np.float32) for f in face], [np.ascontiguousarray(m) for m in masks]


def live_runner(model, *, threads: int = 1):
    """`model` made ready for one face at a time beside other work on the CPU: a DFM file's onnxruntime session
    remade with `threads` sleeping intra-op threads (the default spins on every core and fights the other
    steps), a torch model on the CPU wrapped in `CpuRunner`; anything else (a GPU model, a stand-in) as it is.
    torch's own thread count is process-wide: the caller sets it (live/pipeline.py does, for its session)."""
    if isinstance(model, DFMModel):
        if model.providers and model.providers[0] != "CPUExecutionProvider":
            return model
        try:
            fast = load_dfm(model.path, morph_factor=model.morph_factor, threads=threads)
        except ModelError:  # the file went away since it was loaded: keep the session that is open
            return model
        return _FollowMorph(fast, model)
    device = getattr(model, "device", None)
    if getattr(model, "model", None) is not None and getattr(device, "type", None) == "cpu":
        return CpuRunner(model)
    return model


class _FollowMorph:
    """A remade DFM model whose morph factor follows the original's (the session's controls change that one)."""

    def __init__(self, fast: DFMModel, original: DFMModel):
        self._fast, self._original = fast, original

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("_fast", "_original"):
            raise AttributeError(name)
        return getattr(self._fast, name)

    def swap_numpy(self, faces: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        self._fast.morph_factor = self._original.morph_factor
        return self._fast.swap_numpy(faces)


def crop_matrix(model, landmarks: np.ndarray, size: int | None = None) -> np.ndarray:
    """2x3 frame-to-face transform of the crop `model` takes (at `size`, default the model's resolution)."""
    from .faces.align import dfl_face_matrix, face_matrix

    size = int(size or model.resolution)
    if getattr(model, "crop", None) == DFL_CROP:
        return dfl_face_matrix(landmarks, size)
    return face_matrix(landmarks, model.face_type, size)


__all__ = ["CpuRunner", "DFMModel", "crop_matrix", "is_dfm", "live_runner", "load_dfm", "load_model"]
