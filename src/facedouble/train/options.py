"""Which options a training run uses: the preset's values for a new model, the saved ones for an existing model,
and the options the user gave over either (architecture options fixed once the model exists, run settings
always from this run). The options file itself is read by checkpoint.py (`load_options`)."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import OptionError
from .checkpoint import ModelFiles, load_options
from .models.registry import ModelSpec, preset

# Training option defaults shared by every preset (the presets set batch size and learning rate). Chosen by
# benchmarks/quality.py (docs/quality.md): mask_hands (session 8: more detail with two seeds) and
# eyes_mouth_priority (session 9: the swap's eyes 0.81 as open as dst's with two seeds, against 0.49 and 0.75),
# texture_power 20 (sessions 13-14: face detail 0.466 and 0.442 over two CPU-hours of liae192, against 0.397-0.422
# without it, eyes 1.00 and 0.96, distance to src 0.493 and 0.482; flicker 1.105 and 1.152 against 1.096-1.130),
# reached over the first 1,500 iterations (texture_ramp; session 17: at full power from the start, liae192 drew
# vertical stripes through her brows, eyes and nostrils at 554-754 iterations, gone by 1,351); grain_power 0
# (sessions 24-25: at 10, flicker 0.99-1.00 against 1.03-1.06 over two hours each, but distance to src 0.479-0.500
# against 0.481-0.497 and 9-11% fewer iterations in the hour); warp_from 1500 (session 26: ten minutes without
# random warp gave nearer src 1.00 and detail 0.83 against 0.78 and 0.33 with it, her eyes drawn where the warped
# model drew a smooth patch; an hour warped from 1,500 passed every target, distance 0.496 and detail 1.38).
TRAINING_DEFAULTS: dict[str, Any] = dict(
    target_iteration=0, write_preview_history=False, uniform_yaw=False, random_flip=True, src_scale_mod=0,
    random_warp=True, warp_from=1500, pixel_loss=False, multiscale_dssim=False, face_style_power=0.0, bg_style_power=0.0, eyes_mouth_priority=True,
    detail_power=0.0, texture_power=20.0, texture_ramp=1500, grain_power=0.0, blur_out_mask=False, mask_hands=True,
    color_transfer="none", lr_dropout=False, ema_decay=0.0, adabelief=False, clip_grad=False, optimizer_mode="1", gan_power=0.0,
    true_face_power=0.0, random_hsv_power=0.0, gan_patch_size=0, gan_dims=32,
)
# What a model saved before an option existed trained with, where that differs from TRAINING_DEFAULTS: such a
# model, continued, keeps training as it did (the user may still give the option to change it).
BEFORE_OPTION: dict[str, Any] = dict(texture_power=0.0, texture_ramp=0, warp_from=0)
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


# Why an architecture option cannot change once a model exists (said in the refusal).
_FIXED_WHY = ("the trained weights have the shapes and meaning this option gave the network, so they cannot be "
              "carried over to another value")


def new_model_values(model: str) -> dict[str, Any]:
    """What a new model of the preset `model` trains with before the user's options: ModelSpec's defaults for
    an architecture option the preset does not name (e.g. double_resolution off), the preset's values, and
    the shared TRAINING_DEFAULTS."""
    return {**dataclasses.asdict(ModelSpec()), **preset(model), **TRAINING_DEFAULTS}


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
        values = {k: v for k, v in new_model_values(cfg.model).items() if k in given}
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
            values[k] = BEFORE_OPTION.get(k, TRAINING_DEFAULTS[k])
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


__all__ = ["BEFORE_OPTION", "RUN_SETTINGS", "TRAINING_DEFAULTS", "changeable_options", "describe_changes", "fixed_options",
           "new_model_values", "option_changes", "resolve_options"]
