"""Architectures by name, the architecture options (`ModelSpec`) and the named presets.

Every preset is a setting of the one SAE-family model (DESIGN.md section 4): the older named models of the
original tool (H64, H128, DF, LIAEF128, a 96 px quick model) are presets of it, and `sae` exposes every option.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch.nn as nn

from ...errors import ModelError
from .amp import AMP
from .df import DF
from .liae import LIAE
from .vg import VG

ARCHITECTURES: dict[str, type[nn.Module]] = {"df": DF, "liae": LIAE, "vg": VG, "amp": AMP}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The options that shape the network; fixed once a model exists."""

    resolution: int = 96
    face_type: str = "full"
    archi: str = "df"
    ae_dims: int = 128
    e_dims: int = 32
    d_dims: int = 24
    d_mask_dims: int = 8
    learn_mask: bool = True
    residual_blocks: bool = False
    lightweight_encoder: bool = False
    multiscale_decoder: bool = False
    remove_gray_border: bool = False
    double_resolution: bool = False

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_options(cls, options: Any) -> "ModelSpec":
        """From a TrainConfig (or any object / dict with the same names)."""
        get = options.get if isinstance(options, dict) else lambda k: getattr(options, k, None)
        defaults = cls()
        # an option added after a model was saved has no value in its file: the default it was built with
        return cls(**{name: getattr(defaults, name) if get(name) is None else get(name) for name in cls.fields()})


# Architecture and training defaults of each preset. The architecture values can be changed on a model's
# first run (any preset); afterwards they are fixed. Training values can be changed with --override.
PRESETS: dict[str, dict[str, Any]] = {
    # A 192 px full face for what a 96 px face costs (the CPU default before liae192, which has its shape). The
    # decoder works at 96 px with the lean widths (192/96/48 channels at 24/48/96 px) and its heads predict 2x2
    # pixels each (double_resolution, the original's "d" flag); 11.2 M parameters. Chosen over the 96 px presets
    # by benchmarks/quality.py (see docs/quality.md): after 10 CPU-minutes identity nearer src 0.97 against
    # lean96's 0.86 and quick96's 0.06, face detail 0.19 against 0.15 and 0.10; a 96 px face cannot pass ~0.34 of
    # dst's detail in these frames however well it is learned, a 192 px face ~0.89.
    "cpu192": dict(resolution=192, face_type="full", archi="df", ae_dims=128, e_dims=32, d_dims=24,
                   d_mask_dims=8, learn_mask=True, residual_blocks=False, lightweight_encoder=False,
                   multiscale_decoder=False, remove_gray_border=False, double_resolution=True,
                   batch_size=8, lr=3e-4),
    # The original tool's Quick96 shape: 96 px full face, ae 128, encoder 64, decoder 64, mask decoder 16, its
    # "d" decoder (25.9 M parameters with these layers). About as costly per sample as cpu192 here. With the first
    # sessions' defaults it learned slower per CPU-minute; with today's it passes the ten-minute targets as every CPU
    # preset does, with a grainier face than liae192's (benchmarks/quality.py; docs/quality.md, session 30).
    "quick96": dict(resolution=96, face_type="full", archi="df", ae_dims=128, e_dims=64, d_dims=64,
                    d_mask_dims=16, learn_mask=True, residual_blocks=False, lightweight_encoder=False,
                    multiscale_decoder=False, remove_gray_border=False, double_resolution=True,
                    batch_size=8, lr=3e-4),
    # The lean 96 px network (the CPU default before cpu192): 192/96/48 channels at 24/48/96 px (d_dims 24) and a
    # 64/32/16-channel mask decoder, ~1.1 GMAC per face forward, 7.6 M parameters; 2 cores reach ~20 samples/s
    # with bf16. lr 3e-4: on the sample pair it reached in 20 minutes (3,300 iterations) the loss that 1e-4
    # reached after 5,800 (70 minutes); at 8 minutes 1e-4 / 3e-4 / 5e-4 gave src loss 1.13 / 0.87 / 0.88.
    "lean96": dict(resolution=96, face_type="full", archi="df", ae_dims=128, e_dims=32, d_dims=24,
                   d_mask_dims=8, learn_mask=True, residual_blocks=False, lightweight_encoder=False,
                   multiscale_decoder=False, remove_gray_border=False, batch_size=8, lr=3e-4),
    "h64": dict(resolution=64, face_type="half", archi="df", ae_dims=256, e_dims=48, d_dims=32, d_mask_dims=12,
                learn_mask=True, residual_blocks=False, lightweight_encoder=False, multiscale_decoder=False,
                remove_gray_border=False, batch_size=16, lr=5e-5),
    "h128": dict(resolution=128, face_type="half", archi="df", ae_dims=256, e_dims=48, d_dims=40, d_mask_dims=16,
                 learn_mask=True, residual_blocks=False, lightweight_encoder=False, multiscale_decoder=False,
                 remove_gray_border=False, batch_size=8, lr=5e-5),
    "df": dict(resolution=128, face_type="full", archi="df", ae_dims=512, e_dims=64, d_dims=48, d_mask_dims=16,
               learn_mask=True, residual_blocks=True, lightweight_encoder=False, multiscale_decoder=False,
               remove_gray_border=False, batch_size=8, lr=5e-5),
    "liaef128": dict(resolution=128, face_type="full", archi="liae", ae_dims=256, e_dims=64, d_dims=48,
                     d_mask_dims=16, learn_mask=True, residual_blocks=True, lightweight_encoder=False,
                     multiscale_decoder=False, remove_gray_border=False, batch_size=8, lr=5e-5),
    # The default CPU model (choices.DEFAULT_MODEL: `train`, `run`, the demo): cpu192's shape with the original's
    # LIAE architecture (one decoder for both people; an inter layer for both and one for dst only): 16.2 M
    # parameters, 7-15% slower per iteration than cpu192 on 2 CPU cores. After 10 CPU-minutes the two are level;
    # over two CPU-hours each from scratch (docs/quality.md, sessions 9-11) liae192's merged face kept detail
    # 0.40-0.42 of dst's against cpu192's 0.31-0.34, her eyes 0.94-0.97 as open as his against 0.76-0.88, with
    # the same identity (1.00, distance 0.49) and landmark error and flicker inside their targets.
    "liae192": dict(resolution=192, face_type="full", archi="liae", ae_dims=128, e_dims=32, d_dims=24,
                    d_mask_dims=8, learn_mask=True, residual_blocks=False, lightweight_encoder=False,
                    multiscale_decoder=False, remove_gray_border=False, double_resolution=True,
                    batch_size=8, lr=3e-4),
    # The original's AMP model (archi amp: shared encoder and decoder, an inter per person, a morph factor at
    # merge time), in the CPU default's shape: 192 px full face with the double-resolution lean decoder.
    "amp": dict(resolution=192, face_type="full", archi="amp", ae_dims=128, e_dims=32, d_dims=24,
                d_mask_dims=8, learn_mask=True, residual_blocks=False, lightweight_encoder=False,
                multiscale_decoder=False, remove_gray_border=False, double_resolution=True,
                batch_size=8, lr=3e-4),
    "sae": dict(resolution=128, face_type="full", archi="df", ae_dims=256, e_dims=42, d_dims=21, d_mask_dims=16,
                learn_mask=True, residual_blocks=False, lightweight_encoder=False, multiscale_decoder=False,
                remove_gray_border=False, batch_size=8, lr=5e-5),
}


def preset(name: str) -> dict[str, Any]:
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise ModelError(f"Unknown model {name!r}; choose one of {', '.join(PRESETS)}.") from None


def build_model(spec: ModelSpec) -> nn.Module:
    if spec.resolution % 16:
        raise ModelError(f"Resolution {spec.resolution} is not a multiple of 16; choose 64, 80, 96, ... 512.")
    try:
        cls = ARCHITECTURES[spec.archi]
    except KeyError:
        raise ModelError(f"Unknown architecture {spec.archi!r}; choose one of {', '.join(ARCHITECTURES)}.") from None
    return cls(spec)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
