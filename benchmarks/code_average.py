"""Experiment (issue: swap quality, flicker): would averaging the model's code over neighbouring frames steady the
merged face? Measured before building it into the merge.

The df model swaps a face as decoder_src(inter(encoder(face))). Here the code inter(encoder(.)) of every dst face
is computed first, on the faces cut as the merge cuts them (landmarks smoothed over 4 frames each side), and
averaged over neighbouring frames (--taps 3: 1-2-1; 5: 1-2-3-2-1). The workspace is copied, and its merge runs
with the defaults except that the model, given a face, decodes the averaged code of the frame whose code is
nearest (the same crop: relative distance about 0.003). Then the video build and the quality report, as
benchmarks/quality.py --no-train does. Prints the report's figures.

    .venv/bin/python benchmarks/code_average.py WORKSPACE OUT_WORKSPACE [--taps 3|5]

Measured on the 5,131-iteration default model (docs/quality.md): flicker 1.316 -> 1.298 (3 taps) -> 1.268
(5 taps), detail, landmark error and identity unchanged.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import quality as Q  # noqa: E402
from model_detail import dst_crops_in_order, smooth121  # noqa: E402


def averaged(z, taps: int):
    if taps == 3:
        return smooth121(z)
    out = z.clone()
    k = [1 / 9, 2 / 9, 3 / 9, 2 / 9, 1 / 9]
    for i in range(2, len(z) - 2):
        out[i] = sum(k[j] * z[i - 2 + j] for j in range(5))
    return out


def main() -> int:
    import torch

    from facedouble.merge import merger

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workspace", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--taps", type=int, choices=(3, 5), default=3)
    args = ap.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    for sub in ("data_dst", "data_src", "model"):
        shutil.copytree(args.workspace / sub, args.out / sub)
    for name in ("data_dst.mp4", "data_src.mp4", "run.json"):
        if (args.workspace / name).exists():
            shutil.copy(args.workspace / name, args.out / name)

    load = merger.load_swapper

    def load_averaging(ws, cfg):
        swapper = load(ws, cfg)
        model = swapper.model
        crops = dst_crops_in_order(args.out, swapper.face_type, swapper.resolution)
        with torch.no_grad():
            codes = model.inter(model.encoder(torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0))).float()
        smooth, flat = averaged(codes, args.taps), codes.reshape(len(codes), -1)

        def swap(faces):
            z = model.inter(model.encoder(faces))
            d = torch.cdist(z.float().reshape(len(z), -1), flat)
            near = d.min(1).values / z.float().reshape(len(z), -1).norm(dim=1) < 0.05   # the same crop
            z = torch.where(near[:, None, None, None], smooth[d.argmin(1)].to(z.dtype), z)
            face, mask, _ = model.decoder_src(z)
            return face, None if mask is None else mask * model.decoder_dst.mask_only(z)

        model.swap = swap
        return swapper

    merger.load_swapper = load_averaging
    summary, _ = Q.merge_build_report(args.out, "cpu192", "cpu")
    print({k: round(v, 3) for k, v in Q.figures(summary).items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
