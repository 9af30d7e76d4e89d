"""df: one shared encoder and bottleneck, one decoder per person (the original "DF" / "H64" / "H128" family).

Training reconstructs src with the src decoder and dst with the dst decoder; the swap sends a dst face
through the shared encoder and bottleneck into the *src* decoder.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import Decoder, Encoder, Inter, bottleneck_sizes


class DF(nn.Module):
    deep_encoder = False

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        enc_res, low = bottleneck_sizes(spec.resolution, spec.double_resolution)
        self.encoder = Encoder(spec.e_dims, spec.lightweight_encoder, deep=self.deep_encoder)
        self.inter = Inter(self.encoder.out_ch, low, spec.ae_dims, spec.ae_dims, in_res=enc_res)
        dec = dict(learn_mask=spec.learn_mask, residual_blocks=spec.residual_blocks, multiscale=spec.multiscale_decoder,
                   double=spec.double_resolution)
        self.decoder_src = Decoder(self.inter.out_ch, spec.d_dims, spec.d_mask_dims, **dec)
        self.decoder_dst = Decoder(self.inter.out_ch, spec.d_dims, spec.d_mask_dims, **dec)

    def forward(self, src: torch.Tensor, dst: torch.Tensor, with_swap: bool = False) -> dict:
        """Both reconstructions (and, with `with_swap`, dst -> src) plus the bottleneck codes."""
        n = src.shape[0]
        codes = self.inter.code(self.encoder(torch.cat([src, dst])))  # both people in one batch: faster
        src_z, dst_z = self.inter.expand(codes).split([n, dst.shape[0]])
        src_code, dst_code = codes.split([n, dst.shape[0]])
        out = {"src_code": src_code, "dst_code": dst_code}
        out["src_src"], out["src_src_mask"], out["src_src_lows"] = self.decoder_src(src_z)
        out["dst_dst"], out["dst_dst_mask"], out["dst_dst_lows"] = self.decoder_dst(dst_z)
        if with_swap:
            out["dst_src"], out["dst_src_mask"], _ = self.decoder_src(dst_z)
        return out

    def swap(self, dst: torch.Tensor):
        """dst faces -> (src-identity faces, mask or None). The mask is the product of the src decoder's mask
        (where the predicted face is) and the dst decoder's (dst's own outline), so the merge pastes only
        where both agree there is face."""
        return self.swap_from_code(self.swap_code(dst))

    def swap_code(self, dst: torch.Tensor) -> torch.Tensor:
        """dst faces -> their bottleneck codes (B, ae_dims): what the swap decodes (the merge averages them over
        neighbouring frames for a steadier face)."""
        return self.inter.code(self.encoder(dst))

    def swap_from_code(self, code: torch.Tensor):
        """Codes from `swap_code` -> the swap (face, mask or None), as `swap` gives it."""
        z = self.inter.expand(code)
        face, mask, _ = self.decoder_src(z)
        if mask is not None:
            mask = mask * self.decoder_dst.mask_only(z)
        return face, mask
