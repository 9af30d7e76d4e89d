"""amp: one shared encoder, two inter layers (src and dst) and one shared decoder (the original "AMP" model).

Training sends src faces through inter_src and dst faces through inter_dst into the one decoder, so both
inters learn to speak the decoder's language. The swap sends a dst face's encoder output through both inters
and mixes them before the decoder: inter_src * m + inter_dst * (1 - m), with the morph factor m in 0..1. At 0
the result is dst's own reconstruction, at 1 the full swap; values between give a face between the two
people (the merge's and the DFM file's morph factor).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import Decoder, Encoder, Inter, bottleneck_sizes

DEFAULT_MORPH = 1.0  # a trained model folder swaps fully unless a morph factor is given


class AMP(nn.Module):
    morphable = True

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        enc_res, low = bottleneck_sizes(spec.resolution, spec.double_resolution)
        self.encoder = Encoder(spec.e_dims, spec.lightweight_encoder)
        self.inter_src = Inter(self.encoder.out_ch, low, spec.ae_dims, spec.ae_dims, in_res=enc_res)
        self.inter_dst = Inter(self.encoder.out_ch, low, spec.ae_dims, spec.ae_dims, in_res=enc_res)
        self.decoder = Decoder(spec.ae_dims, spec.d_dims, spec.d_mask_dims, learn_mask=spec.learn_mask,
                               residual_blocks=spec.residual_blocks, multiscale=spec.multiscale_decoder,
                               double=spec.double_resolution)

    def forward(self, src: torch.Tensor, dst: torch.Tensor, with_swap: bool = False) -> dict:
        """Both reconstructions (src through inter_src, dst through inter_dst), with `with_swap` the full swap
        (morph 1: dst's encoding through inter_src), and the bottleneck codes."""
        src_e, dst_e = self.encoder(torch.cat([src, dst])).split([src.shape[0], dst.shape[0]])
        src_code, dst_code = self.inter_src.code(src_e), self.inter_dst.code(dst_e)
        out = {"src_code": src_code, "dst_code": dst_code}
        out["src_src"], out["src_src_mask"], out["src_src_lows"] = self.decoder(self.inter_src.expand(src_code))
        out["dst_dst"], out["dst_dst_mask"], out["dst_dst_lows"] = self.decoder(self.inter_dst.expand(dst_code))
        if with_swap:
            out["dst_src"], out["dst_src_mask"], _ = self.decoder(self.inter_src(dst_e))
        return out

    def morph_parts(self, dst: torch.Tensor, morph) -> tuple:
        """(face, its mask or None, dst's own mask or None) of dst faces decoded from the mix
        inter_src * morph + inter_dst * (1 - morph); `morph` is a number or a tensor of one value."""
        e = self.encoder(dst)
        z_dst = self.inter_dst(e)
        z = self.inter_src(e) * morph + z_dst * (1 - morph)
        face, mask, _ = self.decoder(z)
        return face, mask, self.decoder.mask_only(z_dst)

    def swap(self, dst: torch.Tensor, morph=DEFAULT_MORPH):
        """dst faces -> (faces morphed towards src by `morph`, mask or None); the mask is the product of the
        morphed face's mask and dst's own (decoded from inter_dst), so it also follows dst's outline."""
        face, mask, dst_mask = self.morph_parts(dst, morph)
        if mask is not None:
            mask = mask * dst_mask
        return face, mask
