"""The model folder: options, checkpoints, backups, and loading a trained model for the merge (`load_swapper`).

Files of a model named NAME (the preset's name) in `workspace/model/`:

    NAME_options.json      the resolved TrainConfig (stage JSON); architecture options fixed from the first run
    NAME.safetensors       one checkpoint: the network's weights ("model.*"), the optimizers' state
                           ("optim.<which>.<index>.<key>"), discriminators ("disc.*"), the loss history
                           ("history", float32 (N, 2): src, dst per iteration); its metadata holds the counters
                           as JSON (iteration, seed, seconds trained, optimizer hyper-parameters)
    NAME_state.json        a readable copy of those counters and the loss history (for people and tools)
    NAME_preview.png       the latest preview grid; NAME_loss.png the loss plot
    history/NAME_<iteration>.png   preview history (when asked);  backups/NAME_<iteration>.safetensors

The checkpoint is written to a temporary file in the same folder and renamed over the old one, so a kill
during a save leaves the previous checkpoint whole. Nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig, write_json_atomic
from ..device import amp_dtype_for
from ..errors import ModelError, OptionError
from ..files import atomic_path
from .models.registry import PRESETS, ModelSpec, build_model, preset

FORMAT = "facedouble-model"
FORMAT_VERSION = 1

# Training option defaults shared by every preset (the presets set batch size and learning rate).
TRAINING_DEFAULTS: dict[str, Any] = dict(
    target_iteration=0, write_preview_history=False, uniform_yaw=False, random_flip=True, src_scale_mod=0,
    random_warp=True, pixel_loss=False, face_style_power=0.0, bg_style_power=0.0, eyes_mouth_priority=False,
    blur_out_mask=False,
    color_transfer="none", lr_dropout=False, adabelief=False, clip_grad=False, optimizer_mode="1", gan_power=0.0,
    true_face_power=0.0, random_hsv_power=0.0, gan_patch_size=0, gan_dims=32,
)
RUN_SETTINGS = ("device", "amp", "channels_last", "workers", "threads", "autosave_minutes", "backup_hours", "backups_kept",
                "preview_every", "override_options", "pretrain", "faceset", "from_model")


def fixed_options() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("fixed"))


def changeable_options() -> tuple[str, ...]:
    fixed = set(fixed_options())
    return tuple(f.name for f in dataclasses.fields(TrainConfig)
                 if f.name not in fixed and f.name not in RUN_SETTINGS and f.name != "model")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    folder: Path
    name: str

    @property
    def options(self) -> Path:
        return self.folder / f"{self.name}_options.json"

    @property
    def weights(self) -> Path:
        return self.folder / f"{self.name}.safetensors"

    @property
    def state(self) -> Path:
        return self.folder / f"{self.name}_state.json"

    @property
    def preview(self) -> Path:
        return self.folder / f"{self.name}_preview.png"

    @property
    def loss_plot(self) -> Path:
        return self.folder / f"{self.name}_loss.png"

    @property
    def history(self) -> Path:
        return self.folder / "history"

    @property
    def backups(self) -> Path:
        return self.folder / "backups"


def find_models(model_dir: Path) -> list[str]:
    """Names of the trained models in a folder (an options file and a checkpoint), newest save first."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    found = [p.name[: -len("_options.json")] for p in model_dir.glob("*_options.json")]
    found = [n for n in found if (model_dir / f"{n}.safetensors").is_file()]
    return sorted(found, key=lambda n: (model_dir / f"{n}.safetensors").stat().st_mtime, reverse=True)


# -- options ------------------------------------------------------------------------------------------

def load_options(files: ModelFiles) -> TrainConfig | None:
    if not files.options.is_file():
        return None
    try:
        return TrainConfig.load(files.options)
    except Exception as e:  # noqa: BLE001 - any parse problem is a broken model folder
        raise ModelError(f"{files.options} cannot be read ({e}); restore it from model/backups/ or move the "
                         f"model folder away to start a new model.") from None


# Why an architecture option cannot change once a model exists (said in the refusal).
_FIXED_WHY = ("the trained weights have the shapes and meaning this option gave the network, so they cannot be "
              "carried over to another value")


def option_changes(model_dir: Path, cfg: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """The training options `cfg` gives (not None) that differ from those saved with the existing model
    `cfg.model` in `model_dir`: {name: (saved, given)}; empty for a new model. A given option is the user's
    choice (a flag typed on the command line, a value in --config or in the UI form) and is applied."""
    saved = load_options(ModelFiles(Path(model_dir), cfg.model))
    if saved is None:
        return {}
    given, saved_values = cfg.to_dict(), saved.to_dict()
    return {k: (saved_values[k], given[k]) for k in changeable_options()
            if given[k] is not None and given[k] != saved_values[k]}


def describe_changes(name: str, changes: dict[str, tuple[Any, Any]]) -> str:
    """One line saying what changed for the existing model, e.g. `quick96: --batch-size 8 -> 16`."""
    return f"{name}: changed " + ", ".join(f"{_flag(k)} {old!r} -> {new!r}" for k, (old, new) in changes.items())


def resolve_options(model_dir: Path, cfg: TrainConfig) -> tuple[TrainConfig, bool]:
    """The options to train with, every value filled in, and whether the model already exists.

    New model: the preset's values, replaced by every value given in `cfg`; a random seed unless given.
    Existing model: the saved values, replaced by every training option given in `cfg` (see `option_changes`;
    `describe_changes` words them for the user). A given architecture option that differs is refused with the
    reason. Run settings (device, workers, autosave, ...) always come from `cfg`."""
    files = ModelFiles(Path(model_dir), cfg.model)
    saved = load_options(files)
    given = cfg.to_dict()
    if saved is None:
        # an architecture option a preset does not name takes ModelSpec's default (e.g. double_resolution off)
        values = {**dataclasses.asdict(ModelSpec()), **preset(cfg.model), **TRAINING_DEFAULTS}
        values = {k: v for k, v in values.items() if k in given}
        for k, v in given.items():
            if v is not None:
                values[k] = v
        if values.get("seed") is None:
            values["seed"] = secrets.randbelow(2**31 - 1)
        resolved = TrainConfig.from_dict({**given, **values})
        _check_combination(resolved)
        return resolved, False
    saved_values = saved.to_dict()
    for name in fixed_options():
        if given[name] is not None and given[name] != saved_values[name]:
            raise OptionError(
                f"{_flag(name)} is fixed for the existing model {cfg.model} in {files.folder} (it is "
                f"{saved_values[name]!r}): {_FIXED_WHY}; leave it out, or move {files.folder} away to start a "
                f"new model.")
    changed = {k: new for k, (_old, new) in option_changes(model_dir, cfg).items()}
    values = {**saved_values, **changed, **{k: given[k] for k in RUN_SETTINGS}}
    values["model"] = cfg.model
    arch_defaults = dataclasses.asdict(ModelSpec())
    for k, v in values.items():  # options added to TrainConfig after the model was made
        if v is None and k in TRAINING_DEFAULTS:
            values[k] = TRAINING_DEFAULTS[k]
        elif v is None and k in arch_defaults:  # an architecture option the model was built without
            values[k] = arch_defaults[k]
    resolved = TrainConfig.from_dict(values)
    _check_combination(resolved)
    return resolved, True


def _check_combination(opts: TrainConfig) -> None:
    if opts.true_face_power and opts.archi not in ("df", "vg"):
        raise OptionError(f"--true-face-power works with --archi df or vg, not {opts.archi}; set it to 0.")
    for name in ModelSpec.fields():
        if getattr(opts, name) is None:
            raise OptionError(f"{_flag(name)} has no value; give one or choose a preset that sets it.")


# -- checkpoint files ----------------------------------------------------------------------------------



def save_checkpoint(path: Path, tensors: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write tensors (torch) and JSON-able metadata as one safetensors file, atomically (temp file, fsync,
    rename): a kill at any moment leaves either the old or the new checkpoint, never half of one."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save_file(flat, str(tmp), metadata={"format": FORMAT, "state": json.dumps(meta)})
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    return path


def read_meta(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{path} is not a readable facedouble checkpoint ({e}); restore one from model/backups/.") from None
    if raw.get("format") != FORMAT:
        raise ModelError(f"{path} is not a facedouble model checkpoint; train one with `facedouble train`.")
    meta = json.loads(raw.get("state", "{}"))
    if meta.get("version", 0) > FORMAT_VERSION:
        raise ModelError(f"{path} was written by a newer facedouble (format {meta.get('version')}); upgrade facedouble.")
    return meta


def read_checkpoint(path: Path, prefix: str | None = None, device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, metadata) of a checkpoint; only the tensors whose name starts with `prefix` when given."""
    from safetensors import safe_open

    meta = read_meta(path)
    tensors = {}
    with safe_open(str(path), framework="pt", device=device) as fh:
        for key in fh.keys():
            if prefix is None or key.startswith(prefix):
                tensors[key] = fh.get_tensor(key)
    bad = next((k for k, t in tensors.items() if t.is_floating_point() and not bool(t.isfinite().all())), None)
    if bad is not None:  # training never saves these: the file was damaged or written by something else
        raise ModelError(f"{path} holds NaN or infinite weights ({bad}); copy the newest checkpoint in "
                         f"{Path(path).parent / 'backups'} over it, or move the model folder away to start a new model.")
    return tensors, meta


def flatten_optimizer(which: str, state: dict) -> tuple[dict[str, Any], list]:
    """torch optimizer state_dict -> ({"optim.<which>.<index>.<key>": tensor}, param_groups as JSON)."""
    import torch

    tensors = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optim.{which}.{index}.{key}"] = t
    return tensors, state["param_groups"]


def unflatten_optimizer(which: str, tensors: dict[str, Any], groups: list) -> dict:
    prefix = f"optim.{which}."
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith(prefix):
            index, key = name[len(prefix):].split(".", 1)
            state.setdefault(int(index), {})[key] = t
    return {"state": state, "param_groups": groups}


def write_state_json(files: ModelFiles, meta: dict[str, Any], history: np.ndarray) -> None:
    """Readable copy of the counters and loss history (the checkpoint's metadata is the authority)."""
    data = dict(meta)
    data["loss_history"] = np.round(np.asarray(history, np.float64), 6).tolist()
    write_json_atomic(files.state, data)


def backup(files: ModelFiles, iteration: int, keep: int) -> Path:
    """Copy the checkpoint and options to backups/NAME_<iteration>.*, keeping the newest `keep`."""
    files.backups.mkdir(parents=True, exist_ok=True)
    dest = files.backups / f"{files.name}_{iteration:08d}.safetensors"
    with atomic_path(dest) as tmp:
        shutil.copyfile(files.weights, tmp)
    shutil.copyfile(files.options, files.backups / f"{files.name}_{iteration:08d}_options.json")
    old = sorted(files.backups.glob(f"{files.name}_*.safetensors"))[:-keep]
    for p in old:
        p.unlink(missing_ok=True)
        (p.parent / (p.stem + "_options.json")).unlink(missing_ok=True)
    return dest


# -- inference: the contract the merge stage codes against ------------------------------------------------

def ellipse_mask(size: int) -> np.ndarray:
    """A centred soft ellipse (float32 HW in [0, 1]) derived from nothing but the image size: semi-axes
    0.38 x width and 0.45 x height, centre at (0.5, 0.52) of the image, fully on inside 85% of the radius
    and fading smoothly (smoothstep) to 0 at the ellipse. Used where no mask is learned."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2.0
    r = np.sqrt(((xs - c) / (0.38 * size)) ** 2 + ((ys - 0.52 * (size - 1)) / (0.45 * size)) ** 2)
    t = np.clip((1.0 - r) / 0.15, 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


class IdentitySwapper:
    """A stand-in for a trained model: returns each face unchanged, with `ellipse_mask` as its mask.
    Same interface as `Swapper` (resolution, face_type, learn_mask=False, device=cpu, swap, swap_numpy)."""

    learn_mask = False

    def __init__(self, resolution: int, face_type: str = "full"):
        import torch

        self.resolution, self.face_type = int(resolution), face_type
        self.device = torch.device("cpu")
        self._mask = ellipse_mask(self.resolution)

    def swap(self, faces):
        import torch

        _check_faces(faces, self.resolution)
        mask = torch.from_numpy(self._mask).to(faces.device)[None, None].expand(faces.shape[0], 1, -1, -1)
        return faces.float().clamp(0, 1).clone(), mask.clone()

    def swap_numpy(self, faces: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return _swap_numpy(self, faces)


class Swapper:
    """A trained model ready to swap faces (eval mode, no gradients).

    `swap(faces)`: B x 3 x H x W float tensor in [0, 1], RGB dst faces cut at the model's resolution and face
    type -> (src-identity faces B x 3 x H x W, masks B x 1 x H x W), float32 in [0, 1] on the input's device.
    It runs under autocast where the hardware has it: bf16 (else fp16) on a GPU, with channels-last; bf16 on a
    CPU with native bf16 (AVX512-BF16/AMX: 2.4x faster at batch 8 for quick96, output within 1 level of
    255 of float32, mean 0.15); float32 elsewhere.
    Without a learned mask the mask is `ellipse_mask`. `swap_numpy` does the same for lists of RGB uint8 HWC
    images and returns float32 HWC faces and HW masks."""

    def __init__(self, model, spec: ModelSpec, device, name: str, iteration: int, *, amp: bool = True,
                 morph_factor: float | None = None):
        self.model, self.spec, self.device, self.name, self.iteration = model, spec, device, name, iteration
        # morphable models (amp): 0 = dst's own face .. 1 = the full swap; ignored by the others
        self.morph_factor = 1.0 if morph_factor is None else float(morph_factor)
        self.resolution, self.face_type, self.learn_mask = spec.resolution, spec.face_type, spec.learn_mask
        self._amp = amp_dtype_for(device, amp)
        self._mask = ellipse_mask(self.resolution)

    def swap(self, faces):
        import torch

        _check_faces(faces, self.resolution)
        x = faces.to(self.device, torch.float32)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        # no_grad rather than inference_mode: callers may change the returned tensors in place
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self._amp or torch.float32,
                                                    enabled=self._amp is not None):
            if self.morphable:
                face, mask = self.model.swap(x, morph=self.morph_factor)
            else:
                face, mask = self.model.swap(x)
        face = face.float().clamp(0, 1)
        if mask is None:
            mask = torch.from_numpy(self._mask).to(face.device)[None, None].expand(face.shape[0], 1, -1, -1)
        return face.to(faces.device).contiguous(), mask.float().clamp(0, 1).to(faces.device).contiguous()

    def swap_numpy(self, faces: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return _swap_numpy(self, faces)

    @property
    def morphable(self) -> bool:
        return bool(getattr(self.model, "morphable", False))


def _check_faces(faces, resolution: int) -> None:
    if faces.ndim != 4 or faces.shape[1] != 3 or faces.shape[2] != resolution or faces.shape[3] != resolution:
        raise ModelError(f"The model takes B x 3 x {resolution} x {resolution} faces, not {tuple(faces.shape)}; "
                         f"cut the faces at the model's resolution and face type.")


def _swap_numpy(swapper, faces: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    import torch

    if not faces:
        return [], []
    for f in faces:
        if f.shape != (swapper.resolution, swapper.resolution, 3):
            raise ModelError(f"The model takes {swapper.resolution} x {swapper.resolution} RGB faces, not {f.shape}.")
    x = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float().div_(255.0)
    face, mask = swapper.swap(x)
    face_np = face.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
    mask_np = mask[:, 0].cpu().numpy().astype(np.float32)
    return list(face_np), list(mask_np)


def load_swapper(model_dir: Path, device: str = "auto", name: str | None = None, *, amp: bool = True,
                 morph_factor: float | None = None) -> Swapper:
    """The trained model in `model_dir` (the newest saved one when several and `name` is None), ready to swap.
    `amp=False` keeps float32 everywhere (e.g. to compare with an exported float32 model). `morph_factor`
    (0..1, default 1) is the morph of an amp model; other architectures ignore it."""
    from ..device import parse_device

    model_dir = Path(model_dir)
    names = find_models(model_dir)
    if name is None:
        if not names:
            foreign = sorted(p.name for p in model_dir.glob("*") if p.suffix in (".npy", ".h5", ".dat", ".pth", ".ckpt")) \
                if model_dir.is_dir() else []
            if foreign:
                raise ModelError(f"{model_dir} holds model files of another tool ({', '.join(foreign[:3])}); facedouble "
                                 f"cannot use them: train a model with `facedouble train`.")
            raise ModelError(f"No trained model in {model_dir}; train one with `facedouble train` first.")
        name = names[0]
    files = ModelFiles(model_dir, name)
    if name not in names:
        raise ModelError(f"No trained model {name!r} in {model_dir}"
                         + (f" (there is {', '.join(names)})" if names else "") + "; train it with `facedouble train`.")
    opts = load_options(files)
    assert opts is not None
    spec = ModelSpec.from_options(opts)
    tensors, meta = read_checkpoint(files.weights, prefix="model.")
    saved_spec = meta.get("spec")
    if saved_spec and ModelSpec.from_options(saved_spec) != spec:  # options added later take their defaults
        raise ModelError(f"{files.weights} was trained with another architecture than {files.options} describes; "
                         f"restore the matching options file from model/backups/.")
    dev = parse_device(device)
    model = build_model(spec)
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items()}, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ModelError(f"{files.weights} does not fit the {spec.archi} architecture of {files.options} ({first}); "
                         f"restore a matching pair from model/backups/.") from None
    model = model.to(dev).eval()
    if dev.type == "cuda":
        import torch

        model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    return Swapper(model, spec, dev, name, int(meta.get("iteration", 0)), amp=amp, morph_factor=morph_factor)


__all__ = ["IdentitySwapper", "ModelFiles", "Swapper", "TRAINING_DEFAULTS", "ellipse_mask", "find_models",
           "load_swapper", "read_checkpoint", "resolve_options", "option_changes", "describe_changes",
           "save_checkpoint", "PRESETS"]
