"""Building blocks shared by every architecture (SAE family, DESIGN.md section 4).

Tensors are BCHW. Every block ends in a LeakyReLU(0.1) except the output heads, which end in a sigmoid so
faces and masks come out in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


class Downscale(nn.Module):
    """Halve the resolution: a 5x5 stride-2 convolution (or, lightweight, a depthwise 5x5 stride-2
    convolution followed by a 1x1 one, about a fifth of the work)."""

    def __init__(self, cin: int, cout: int, lightweight: bool = False):
        super().__init__()
        if lightweight and cin >= 8:
            self.conv = nn.Sequential(nn.Conv2d(cin, cin, 5, 2, 2, groups=cin), nn.Conv2d(cin, cout, 1))
        else:
            self.conv = nn.Conv2d(cin, cout, 5, 2, 2)

    def forward(self, x):
        return act(self.conv(x))


class Upscale(nn.Module):
    """Double the resolution: a 3x3 convolution to 4x the channels at the low resolution, then a pixel shuffle
    (sub-pixel convolution), which costs what a 3x3 convolution at the high resolution would, without
    the checkerboard of transposed convolutions."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 4, 3, 1, 1)
        icnr_(self.conv.weight, self.conv.bias)


    def forward(self, x):
        return act(F.pixel_shuffle(self.conv(x), 2))


@torch.no_grad()
def icnr_(weight: torch.Tensor, bias: torch.Tensor | None = None, scale: int = 2) -> None:
    """ICNR initialisation (Aitken et al. 2017): the `scale`^2 sub-pixel kernels of each output channel start
    equal, so a fresh pixel-shuffle upscale acts like nearest-neighbour upsampling, with no checkerboard."""
    out_ch = weight.shape[0] // (scale * scale)
    sub = torch.empty(out_ch, *weight.shape[1:])
    nn.init.kaiming_uniform_(sub, a=5 ** 0.5)  # PyTorch's default for convolutions
    weight.copy_(sub.repeat_interleave(scale * scale, dim=0))
    if bias is not None:
        bias.copy_(bias[::scale * scale].repeat_interleave(scale * scale))


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x):
        return act(x + self.conv2(act(self.conv1(x))))


def run(block: nn.Module, x: torch.Tensor, checkpointed: bool) -> torch.Tensor:
    """Apply a block, recomputing its activations in the backward pass when `checkpointed`
    (optimizer mode 2: less memory for about a third more compute)."""
    if checkpointed and torch.is_grad_enabled() and x.requires_grad:
        return checkpoint(block, x, use_reentrant=False)
    return block(x)


class Encoder(nn.Module):
    """Four downscales (e_dims x 1, 2, 4, 8 channels): res -> res/16. With `deep` (the vg architecture) each
    downscale is followed by a residual block, a deeper VGG-like encoder at the same resolution schedule."""

    def __init__(self, e_dims: int, lightweight: bool = False, deep: bool = False):
        super().__init__()
        chans = [3, e_dims, e_dims * 2, e_dims * 4, e_dims * 8]
        stages = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            stage = [Downscale(cin, cout, lightweight)]
            if deep:
                stage.append(ResBlock(cout))
            stages.append(nn.Sequential(*stage))
        self.stages = nn.ModuleList(stages)
        self.out_ch = chans[-1]
        self.checkpointed = False

    def forward(self, x):
        for stage in self.stages:
            x = run(stage, x, self.checkpointed)
        return x


def bottleneck_sizes(resolution: int, double: bool) -> tuple[int, int]:
    """(side of the encoder's map, side the bottleneck expands to) for a face of `resolution` px: res/16 and
    res/16, or res/16 and res/32 for a double-resolution decoder (which starts one step lower, at res/16)."""
    return resolution // 16, resolution // (32 if double else 16)


class Inter(nn.Module):
    """The bottleneck: the encoder's (in_res)^2 map -> ae_dims numbers -> a (low_res)^2 map of `out_ch`
    channels, upscaled once. in_res is res/16; low_res is res/16 too, or res/32 for a double-resolution decoder
    (see `Decoder`), so the decoder starts at res/8 or res/16."""

    def __init__(self, in_ch: int, low_res: int, ae_dims: int, out_ch: int, in_res: int | None = None):
        super().__init__()
        self.low_res, self.out_ch = low_res, out_ch
        in_res = low_res if in_res is None else in_res
        self.dense1 = nn.Linear(in_ch * in_res * in_res, ae_dims)
        self.dense2 = nn.Linear(ae_dims, low_res * low_res * out_ch)
        self.up = Upscale(out_ch, out_ch)

    def code(self, x):
        return self.dense1(torch.flatten(x, 1))

    def expand(self, code):
        x = self.dense2(code).view(-1, self.out_ch, self.low_res, self.low_res)
        return self.up(x)

    def forward(self, x):
        return self.expand(self.code(x))


class Decoder(nn.Module):
    """res/8 -> res: three upscales (d_dims x 8, 4, 2 channels), optional residual blocks after each, and a
    sigmoid RGB head. The mask branch (learn_mask) is the same with d_mask_dims. With `multiscale` the
    decoder also returns RGB at res/4 and res/2, each trained against the downscaled target.

    With `double` (the original tool's "d" architecture flag) the decoder works at half the output
    resolution (res/16 -> res/2) and its heads predict 2x2 output pixels per position (a pixel shuffle), so a
    face of twice the side costs about what the plain decoder's face costs; the heads are 3x3 so each
    output pixel sees its neighbours."""

    def __init__(self, in_ch: int, d_dims: int, d_mask_dims: int, *, learn_mask: bool = True,
                 residual_blocks: bool = False, multiscale: bool = False, double: bool = False):
        super().__init__()
        self.double = double
        head = (lambda cin, cout: nn.Conv2d(cin, cout * 4, 3, 1, 1)) if double else (lambda cin, cout: nn.Conv2d(cin, cout, 1))
        chans = [in_ch, d_dims * 8, d_dims * 4, d_dims * 2]
        self.ups = nn.ModuleList(Upscale(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.res = nn.ModuleList(ResBlock(c) for c in chans[1:]) if residual_blocks else None
        self.rgb = head(chans[-1], 3)
        self.multiscale = multiscale
        if multiscale:  # RGB heads at res/4 and res/2
            self.rgb_low = nn.ModuleList(nn.Conv2d(c, 3, 1) for c in chans[1:3])
        self.learn_mask = learn_mask
        if learn_mask:
            mchans = [in_ch, d_mask_dims * 8, d_mask_dims * 4, d_mask_dims * 2]
            self.mask_ups = nn.ModuleList(Upscale(a, b) for a, b in zip(mchans[:-1], mchans[1:]))
            self.mask = head(mchans[-1], 1)
        self.checkpointed = False

    def forward(self, z):
        """Returns (rgb, mask or None, [rgb at res/4, rgb at res/2] when multiscale else [])."""
        x, lows = z, []
        for i, up in enumerate(self.ups):
            x = run(up, x, self.checkpointed)
            if self.res is not None:
                x = run(self.res[i], x, self.checkpointed)
            if self.multiscale and i < 2:
                lows.append(torch.sigmoid(self.rgb_low[i](x)))
        rgb = torch.sigmoid(self._head(self.rgb, x))
        return rgb, self.mask_only(z), lows

    def _head(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        y = conv(x)
        return F.pixel_shuffle(y, 2) if self.double else y

    def mask_only(self, z):
        """The mask branch alone (None without learn_mask)."""
        if not self.learn_mask:
            return None
        m = z
        for up in self.mask_ups:
            m = run(up, m, self.checkpointed)
        return torch.sigmoid(self._head(self.mask, m))


class PatchDiscriminator(nn.Module):
    """GAN critic on faces: strided 4x4 convolutions down to a grid of real/fake logits, each judging one
    patch of the face. `ch` is the width of the first layer (the GAN dims; doubled per downscale, up to 8x).
    `patch` is the side in pixels of the square each logit sees (its receptive field), the GAN patch size:
    n strided layers and a 3x3 head see 5 * 2^n - 2 pixels, and each extra 3x3 layer at the coarsest scale adds
    2^(n+1), so the critic gets the most downscales whose field fits in `patch` and then the extra layers that
    bring its field nearest to `patch` (within 2^n pixels). patch 0: about a seventh of the face at any resolution
    (the critic before the option existed)."""

    def __init__(self, res: int, ch: int = 32, patch: int = 0):
        super().__init__()
        if patch <= 0:
            n_down, n_extra = max(2, min(4, (res // 24).bit_length())), 0
        else:
            n_down, n_extra = self.layout(res, patch)
        layers, cin = [], 3
        for i in range(n_down):
            cout = ch * 2 ** min(i, 3)
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2)]
            cin = cout
        for _ in range(n_extra):
            layers += [nn.Conv2d(cin, cin, 3, 1, 1), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(cin, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)
        self.receptive_field = 5 * 2 ** n_down - 2 + n_extra * 2 ** (n_down + 1)

    @staticmethod
    def layout(res: int, patch: int) -> tuple[int, int]:
        """(downscales, extra 3x3 layers) whose receptive field is nearest to `patch` pixels; at least one
        downscale, and at most as many as leave a 2 x 2 grid of logits at `res`."""
        max_down = max(1, (res // 2).bit_length() - 1)
        n_down = 1
        while n_down < max_down and 5 * 2 ** (n_down + 1) - 2 <= patch:
            n_down += 1
        rest = patch - (5 * 2 ** n_down - 2)
        return n_down, max(0, min(16, round(rest / 2 ** (n_down + 1))))

    def forward(self, x):
        return self.net(x)


class CodeDiscriminator(nn.Module):
    """True-face critic on the bottleneck codes (df): tells dst codes (1) from src codes (0)."""

    def __init__(self, ae_dims: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(ae_dims, hidden), nn.LeakyReLU(0.1), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.1), nn.Linear(hidden, 1))

    def forward(self, code):
        return self.net(torch.flatten(code, 1))
