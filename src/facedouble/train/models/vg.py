"""vg: the df layout with a deeper, VGG-like encoder: every stride-2 downscale is followed by a residual block
(two more 3x3 convolutions per stage, with a skip). Same bottleneck and per-person decoders as df; it sees more
context per code dimension for about 1.5x the encoder cost. The original tool listed vg as experimental; so is
this one."""

from __future__ import annotations

from .df import DF


class VG(DF):
    deep_encoder = True
