"""Tiny real facedouble models: one saved untrained the way training saves one (so the live paths load it
through `inference.load_model` like any trained model), and one trained for two iterations in a workspace."""

from __future__ import annotations

from pathlib import Path

# a 64-px full-face df model of about 0.3 M parameters: loads and swaps in milliseconds on a CPU
TINY = dict(model="sae", resolution=64, ae_dims=32, e_dims=8, d_dims=8, d_mask_dims=4, batch_size=2, seed=3,
            workers=0, threads=1, preview_every=0, autosave_minutes=0, backup_hours=0)


def tiny_untrained_model(model_dir: Path, name: str = "sae") -> Path:
    """Write `model_dir/<name>_options.json` and `<name>.safetensors` (random weights, iteration 0)."""
    import dataclasses

    from facedouble.config import TrainConfig
    from facedouble.train.checkpoint import FORMAT_VERSION, ModelFiles, save_checkpoint
    from facedouble.train.models.registry import ModelSpec
    from facedouble.train.swapper import untrained_swapper

    sw = untrained_swapper(TINY["model"], seed=TINY["seed"], **{k: v for k, v in TINY.items() if k in ModelSpec.fields()})
    cfg = TrainConfig(**TINY, **{f: getattr(sw.spec, f) for f in ModelSpec.fields() if f not in TINY})
    files = ModelFiles(Path(model_dir), name)
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    cfg.save(files.options)
    save_checkpoint(files.weights, {"model." + k: v for k, v in sw.model.state_dict().items()},
                    {"version": FORMAT_VERSION, "iteration": 0, "spec": dataclasses.asdict(sw.spec)})
    return files.weights


def train_tiny(ws) -> None:
    """A tiny model trained in `ws` for two iterations, with a preview history."""
    from facedouble.config import TrainConfig
    from facedouble.train.trainer import train

    cfg = TrainConfig(model="sae", resolution=64, ae_dims=32, e_dims=8, d_dims=8, d_mask_dims=4, batch_size=2,
                      write_preview_history=True, preview_every=1, device="cpu", amp=False, workers=0, threads=1)
    train(ws, cfg, max_iterations=2)
