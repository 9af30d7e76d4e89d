"""The model folder: its files, the checkpoint format, backups (which options a run uses is train/options.py's;
loading a trained model to swap faces is train/swapper.py's).

Files of a model named NAME (the preset's name) in `workspace/model/`:

    NAME_options.json      the resolved TrainConfig (stage JSON); architecture options fixed from the first run
    NAME.safetensors       one checkpoint: the network's weights ("model.*"), their moving average when kept
                           ("average.*", --ema-decay; what the merge and exports use), the optimizers' state
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
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..choices import DEFAULT_MODEL
from ..config import TrainConfig, write_json_atomic
from ..errors import ModelError
from ..files import atomic_path

FORMAT = "facedouble-model"
FORMAT_VERSION = 1
MODEL_PREFIX = "model."
AVERAGE_PREFIX = "average."  # the averaged weights (--ema-decay); older readers ignore them


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


def model_to_train(model_dir: Path, requested: str | None = None) -> str:
    """The model a training run without a preset named resumes: `requested` when given, else the folder's
    newest model (one trained under an older default keeps training), else the default preset."""
    if requested:
        return requested
    found = find_models(model_dir)
    return found[0] if found else DEFAULT_MODEL


# -- the options file (which options a run uses: train/options.py) -------------------------------------

def load_options(files: ModelFiles) -> TrainConfig | None:
    """The options saved with the model (None when it has no options file yet: a new model)."""
    if not files.options.is_file():
        return None
    try:
        return TrainConfig.load(files.options)
    except Exception as e:  # noqa: BLE001 - any parse problem is a broken model folder
        raise ModelError(f"{files.options} cannot be read ({e}); restore it from model/backups/ or move the "
                         f"model folder away to start a new model.") from None


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


def read_checkpoint(path: Path, prefix: str | tuple[str, ...] | None = None,
                    device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, metadata) of a checkpoint; only the tensors whose name starts with `prefix` (or one of them)
    when given."""
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


def state_dict_of(tensors: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The tensors named `prefix`* with the prefix taken off: one network's state dict out of a checkpoint."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def read_inference_weights(path: Path, device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict, metadata) of the network a merge or export should use: the averaged weights when the
    checkpoint keeps them, else the trained ones."""
    tensors, meta = read_checkpoint(path, prefix=(MODEL_PREFIX, AVERAGE_PREFIX), device=device)
    return state_dict_of(tensors, AVERAGE_PREFIX) or state_dict_of(tensors, MODEL_PREFIX), meta


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


__all__ = ["AVERAGE_PREFIX", "FORMAT", "FORMAT_VERSION", "MODEL_PREFIX", "ModelFiles", "backup", "find_models",
           "load_options", "read_checkpoint", "read_inference_weights", "read_meta", "save_checkpoint", "state_dict_of"]
