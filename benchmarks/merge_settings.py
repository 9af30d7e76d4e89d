"""Merge settings compared by the quality report: how the project chooses its merge defaults (issue: quality report).

On a workspace with a trained model (default: the demo's), merges the dst frames with each setting below (all
else at the defaults), scores each with `facedouble report` (the same frames each time), and prints one row per
setting: identity (share of faces nearer src, mean distance to src), detail, landmark error, flicker, the
background outside the face (the provenance mark aside) and the seam's excess colour difference. Writes
benchmarks/results/merge_settings.json. The workspace's merged/ and report/ are left as the last setting made
them; the default setting is merged again at the end so the workspace ends as a default merge would leave it.

    .venv/bin/python benchmarks/merge_settings.py [--workspace workspace-demo] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from facedouble.config import MergeConfig, ReportConfig  # noqa: E402

SETTINGS: dict[str, dict] = {
    "default": {},
    "color rct": {"color_transfer": "rct"},
    "color lct": {"color_transfer": "lct"},
    "color mkl": {"color_transfer": "mkl"},
    "color idt": {"color_transfer": "idt"},
    "color sot": {"color_transfer": "sot"},
    "mode overlay": {"mode": "overlay"},
    "mode hist-match": {"mode": "hist-match"},
    "mode seamless-hist-match": {"mode": "seamless-hist-match"},
    "mask dst": {"mask": "dst"},
    "mask mesh-dst": {"mask": "mesh-dst"},
    "mask learned-mesh-dst": {"mask": "learned-mesh-dst"},
    "mask learned-dst": {"mask": "learned-dst"},
    "suppress seamless jitter": {"suppress_seamless_jitter": True},
    "no temporal smoothing": {"smooth_frames": 0},
    "erode 10 blur 20": {"erode": 10, "blur": 20},
    "super resolution": {"super_resolution": True},
    # the detail adjustments of the predicted face (merge/adjust.py); judge them by eye and identity too: the detail
    # figure is a Laplacian variance, which sharpening raises without making her face
    "sharpen 30": {"sharpen": 30},
    "sharpen 30 box": {"sharpen": 30, "sharpen_mode": "box"},
    "blur 30": {"sharpen": -30},
    "denoise 100": {"denoise": 100},
    "bicubic degrade 30": {"bicubic_degrade": 30},
    "motion blur 50": {"motion_blur": 50},
    # combinations of the single changes that helped
    "jitter + rct": {"suppress_seamless_jitter": True, "color_transfer": "rct"},
    "jitter + lct": {"suppress_seamless_jitter": True, "color_transfer": "lct"},
    "jitter + idt": {"suppress_seamless_jitter": True, "color_transfer": "idt"},
    "jitter + sot": {"suppress_seamless_jitter": True, "color_transfer": "sot"},
    "jitter + smooth 4": {"suppress_seamless_jitter": True, "smooth_frames": 4},
    "jitter + lct + smooth 4": {"suppress_seamless_jitter": True, "color_transfer": "lct", "smooth_frames": 4},
}

COLUMNS = [
    ("nearer src", lambda s: s["identity"].get("nearer_src")),
    ("d(src)", lambda s: s["identity"].get("mean_src")),
    ("detail", lambda s: s["detail"]["ratio_to_dst_median"]),
    ("lm err", lambda s: s["expression_pose"]["landmark_error_mean"]),
    ("flicker", lambda s: s["temporal"]["flicker_ratio"]),
    ("bg dB", lambda s: s["blending"].get("background_merge_psnr_db")),
    ("seam dE+", lambda s: s["blending"]["seam_delta_e_excess"]),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default=str(ROOT / "workspace-demo"))
    ap.add_argument("--only", nargs="*", help="names of the settings to run (default: all)")
    ap.add_argument("--every", type=int, default=3, help="score every Nth frame (the same frames for each setting)")
    args = ap.parse_args()

    from facedouble.merge.merger import merge
    from facedouble.progress import Reporter
    from facedouble.report import make_report
    from facedouble.train.swapper import load_swapper
    from facedouble.workspace import Workspace

    ws = Workspace(args.workspace)
    if not ws.model.is_dir() or not any(ws.model.glob("*.safetensors")):
        print(f"no trained model in {ws.model}: run `make demo` (or give --workspace WS of a trained workspace)")
        return 0
    names = args.only or list(SETTINGS)
    swapper = load_swapper(ws.model)
    rows: dict[str, dict] = {}
    quiet = Reporter()
    load0 = os.getloadavg()
    for name in names:
        cfg = MergeConfig(**SETTINGS[name])
        t0 = time.monotonic()
        merge(ws, cfg, reporter=quiet, force=True, swapper=swapper)
        merge_s = time.monotonic() - t0
        rep = make_report(ws, ReportConfig(every=args.every, result=str(ws.merged)), reporter=quiet)
        s = rep.summary
        rows[name] = {"settings": SETTINGS[name], "merge_seconds": round(merge_s, 1),
                      **{col: (None if v is None else round(float(v), 4)) for col, f in COLUMNS for v in [f(s)]}}
        print(f"{name:<26}" + "".join(f"{col}={rows[name][col]!s:<9} " for col, _ in COLUMNS) + f"({merge_s:.0f} s)",
              flush=True)
    if names[-1] != "default":
        merge(ws, MergeConfig(), reporter=quiet, force=True, swapper=swapper)
    out = ROOT / "benchmarks" / "results" / "merge_settings.json"
    out.write_text(json.dumps({"workspace": str(ws.root), "model": f"{swapper.name} iteration {swapper.iteration}",
                               "every": args.every, "machine": platform.platform(),
                               "load_average_at_start": load0, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
