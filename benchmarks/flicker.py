"""Where the swapped face's flicker comes from (issue: swap quality): the quality report's flicker figure beside a
motion-compensated one, for merged workspaces.

The report's flicker is the mean frame-to-frame change inside the face over dst's own (merge/temporal.flicker).
A face that moves with dst's head changes between frames in proportion to its own edges and contrast, so a face
with sharper features or more contrast than dst's counts as flicker even when it is perfectly steady on the head.
This script separates the two, over consecutive frames t-1, t of `data_dst/` and `data_dst/merged/` (the PNGs before the
video encode) inside the merge's mask (`data_dst/merged_mask/`, max of the two frames, as the report weighs it):

  * plain: the report's figure, result over dst;
  * compensated: frame t-1 warped onto frame t by the optical flow of the *dst* frames (Farneback; dst's head
    motion, which the swapped face should follow) before the difference, result over dst. 1.0: the face changes
    only as dst's head moves it; above 1: it changes on its own (wobble, shimmer, colour steps);
  * contrast: the luma standard deviation inside the mask, result over dst, and the same of a 3x3 Laplacian
    (edge energy). Plain flicker near these ratios with compensated flicker near 1 means the figure counts the
    face's contrast, not instability.

    .venv/bin/python benchmarks/flicker.py WORKSPACE [WORKSPACE ...] [--frames 72]

Prints one line per workspace and writes benchmarks/results/flicker.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
RESULTS = ROOT / "benchmarks" / "results"


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)


def _warp_back(prev: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """prev (H, W, C) sampled at each pixel of frame t displaced by `flow` (t -> t-1): prev aligned with frame t."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(prev, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def measure(ws: Path, limit: int) -> dict:
    dst_paths = sorted((ws / "data_dst").glob("*.png"))[:limit]
    sums = {k: 0.0 for k in ("plain_res", "plain_dst", "comp_res", "comp_dst", "weight")}
    std_r, std_d, lap_r, lap_d = [], [], [], []
    prev = None
    for path in dst_paths:
        merged, mask_file = ws / "data_dst" / "merged" / path.name, ws / "data_dst" / "merged_mask" / path.name
        if not merged.exists() or not mask_file.exists():
            prev = None
            continue
        dst = cv2.imread(str(path))
        res = cv2.imread(str(merged))
        mask = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
        if mask.max() > 0.5:
            inside = mask > 0.5
            g_d, g_r = _gray(dst), _gray(res)
            std_d.append(float(g_d[inside].std()))
            std_r.append(float(g_r[inside].std()))
            lap_d.append(float(np.abs(cv2.Laplacian(g_d, cv2.CV_32F))[inside].mean()))
            lap_r.append(float(np.abs(cv2.Laplacian(g_r, cv2.CV_32F))[inside].mean()))
        if prev is not None:
            p_dst, p_res, p_mask = prev
            w = np.maximum(mask, p_mask)
            flow = cv2.calcOpticalFlowFarneback(_gray(dst), _gray(p_dst), None, 0.5, 4, 21, 3, 5, 1.1, 0)
            for name, cur, before in (("dst", dst, p_dst), ("res", res, p_res)):
                cur, before = cur.astype(np.float32), before.astype(np.float32)
                sums[f"plain_{name}"] += float((np.abs(cur - before).mean(axis=2) * w).sum())
                sums[f"comp_{name}"] += float((np.abs(cur - _warp_back(before, flow)).mean(axis=2) * w).sum())
            sums["weight"] += float(w.sum())
        prev = (dst, res, mask)
    if not sums["weight"]:
        raise SystemExit(f"{ws}: no consecutive merged frames with a mask")
    return {"workspace": str(ws), "pairs_weight": round(sums["weight"]),
            "flicker_plain": round(sums["plain_res"] / sums["plain_dst"], 3),
            "flicker_compensated": round(sums["comp_res"] / sums["comp_dst"], 3),
            "contrast_ratio": round(float(np.mean(std_r) / np.mean(std_d)), 3),
            "edge_ratio": round(float(np.mean(lap_r) / np.mean(lap_d)), 3),
            "dst_change_plain": round(sums["plain_dst"] / sums["weight"], 3),
            "dst_change_compensated": round(sums["comp_dst"] / sums["weight"], 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workspaces", nargs="+", type=Path)
    ap.add_argument("--frames", type=int, default=72)
    args = ap.parse_args()
    rows = []
    for ws in args.workspaces:
        row = measure(ws, args.frames)
        rows.append(row)
        print(f"{ws.name:32s} flicker plain {row['flicker_plain']:.3f}  compensated {row['flicker_compensated']:.3f}  "
              f"contrast {row['contrast_ratio']:.3f}  edges {row['edge_ratio']:.3f}  (dst's own change "
              f"{row['dst_change_plain']:.2f} -> {row['dst_change_compensated']:.2f} levels after compensation)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "flicker.json"
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)},
                               "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
