"""liae: one shared encoder, two bottlenecks and one shared decoder (the original "LIAEF128").

inter_ab sees both people, inter_b only dst. A src face is decoded from [inter_ab, inter_ab]; a dst face from
[inter_b, inter_ab]; the swap decodes a dst face from [inter_ab, inter_ab], i.e. as if it were src. It keeps
more of dst's expression and lighting than df, at the cost of a less exact src identity.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import Decoder, Encoder, Inter, bottleneck_sizes


class LIAE(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        enc_res, low = bottleneck_sizes(spec.resolution, spec.double_resolution)
        self.encoder = Encoder(spec.e_dims, spec.lightweight_encoder)
        self.inter_ab = Inter(self.encoder.out_ch, low, spec.ae_dims, spec.ae_dims, in_res=enc_res)
        self.inter_b = Inter(self.encoder.out_ch, low, spec.ae_dims, spec.ae_dims, in_res=enc_res)
        self.decoder = Decoder(spec.ae_dims * 2, spec.d_dims, spec.d_mask_dims, learn_mask=spec.learn_mask,
                               residual_blocks=spec.residual_blocks, multiscale=spec.multiscale_decoder,
                               double=spec.double_resolution)

    def forward(self, src: torch.Tensor, dst: torch.Tensor, with_swap: bool = False) -> dict:
        src_e, dst_e = self.encoder(torch.cat([src, dst])).split([src.shape[0], dst.shape[0]])
        src_code, dst_code_ab, dst_code_b = self.inter_ab.code(src_e), self.inter_ab.code(dst_e), self.inter_b.code(dst_e)
        src_ab = self.inter_ab.expand(src_code)
        dst_ab, dst_b = self.inter_ab.expand(dst_code_ab), self.inter_b.expand(dst_code_b)
        out = {"src_code": src_code, "dst_code": dst_code_ab}
        out["src_src"], out["src_src_mask"], out["src_src_lows"] = self.decoder(torch.cat([src_ab, src_ab], 1))
        out["dst_dst"], out["dst_dst_mask"], out["dst_dst_lows"] = self.decoder(torch.cat([dst_b, dst_ab], 1))
        if with_swap:
            out["dst_src"], out["dst_src_mask"], _ = self.decoder(torch.cat([dst_ab, dst_ab], 1))
        return out

    def swap(self, dst: torch.Tensor):
        """dst faces -> (src-identity faces, mask or None); the mask is the product of the swapped face's mask and
        the one decoded from dst's own code ([inter_b, inter_ab]), so it also follows dst's outline."""
        return self.swap_from_code(self.swap_code(dst))

    def swap_code(self, dst: torch.Tensor) -> torch.Tensor:
        """dst faces -> their codes (B, 2 ae_dims): inter_ab's and inter_b's bottlenecks side by side, what the
        swap decodes (the merge averages them over neighbouring frames for a steadier face)."""
        e = self.encoder(dst)
        return torch.cat([self.inter_ab.code(e), self.inter_b.code(e)], 1)

    def swap_from_code(self, code: torch.Tensor):
        """Codes from `swap_code` -> the swap (face, mask or None), as `swap` gives it."""
        code_ab, code_b = code.chunk(2, dim=1)
        ab, b = self.inter_ab.expand(code_ab), self.inter_b.expand(code_b)
        face, mask, _ = self.decoder(torch.cat([ab, ab], 1))
        if mask is not None:
            mask = mask * self.decoder.mask_only(torch.cat([b, ab], 1))
        return face, mask
