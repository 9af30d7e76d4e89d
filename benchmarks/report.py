"""Speed of `facedouble report` on a 472-frame clip, against scoring every frame.

The woman's clip (WolfgangLanger_Pexels.mp4, 472 frames, 640x360) is scored as both result and dst (the
figures are then the trivial ones; the work is the same as for a real result), with the man's clip as src,
at the default sampling (`--every 0`: about 60 frames). The baseline is the obvious report that scores
every frame: its time is the run's fixed cost plus the measured per-frame cost x 472 (running it would take
several minutes on this machine). Prints the figures and writes benchmarks/results/report.json.

    .venv/bin/python benchmarks/report.py [--every 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

from media import media_dir  # noqa: E402

from facedouble.config import ReportConfig  # noqa: E402
from facedouble.report import make_report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--every", type=int, default=0)
    args = ap.parse_args()
    media = media_dir()
    clip = media / "WolfgangLanger_Pexels.mp4"
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ReportConfig(result=str(clip), dst=str(clip), src=(str(media / "single_face.mp4"),), every=args.every,
                           device="cpu", out=tmp)
        t0 = time.monotonic()
        cpu0 = time.process_time()
        res = make_report(None, cfg)
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
        timing = json.loads(res.json.read_text())["timing"]
    frames = 472
    per_frame = timing["seconds_per_frame"]
    fixed = wall - timing["seconds_scoring"]
    every_frame = fixed + per_frame * frames
    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_at_start": load0,
                    "load_average_at_end": os.getloadavg(), "note": "2 CPU cores shared with other work"},
        "clip": f"{clip.name} ({frames} frames, 640x360) as result and dst; src {media / 'single_face.mp4'}",
        "frames_scored": res.frames_scored,
        "seconds_wall": round(wall, 1), "seconds_cpu": round(cpu, 1),
        "seconds_fixed (models, src faces, page)": round(fixed, 1),
        "seconds_per_scored_frame": per_frame,
        "baseline_every_frame_seconds_estimated": round(every_frame, 1),
        "ratio_to_baseline": round(wall / every_frame, 3),
    }
    print(json.dumps(out, indent=2))
    dest = ROOT / "benchmarks" / "results" / "report.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
