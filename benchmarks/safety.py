"""The explicit-content screen: what it costs per screened frame and per hour of video, against decoding
the same frames (CPU time; the simplest thing any stage does with a frame) as the baseline.

The cost is CPU time (the model runs on one thread), which does not depend on what else the machine runs;
the wall time beside it does. Frames: --frames consecutive frames of each sample video (the woman's close-up, 640x360; the man at the door,
640x360; the title sequence, 960x540). In the same run: ms per screened frame (median), ms to decode a frame
(the baseline), and from them the cost per hour of footage at one screened frame per second (the policy's
floor), and how many frames the policy screens of a 10-minute and a 1-hour 30 fps video and of an hour of
src frames extracted at 1 fps.
Prints the figures and writes benchmarks/results/safety.json.

    .venv/bin/python benchmarks/safety.py [--frames 24]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

from media import media_dir  # noqa: E402

from facedouble import safety  # noqa: E402

CLIPS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "no_face.mp4")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24, help="frames of each clip")
    args = ap.parse_args()

    media = media_dir()
    frames, decode_ms = [], []
    for name in CLIPS:
        with av.open(str(media / name)) as c:
            it = c.decode(video=0)
            for _ in range(args.frames):
                t = time.process_time()
                f = next(it).to_ndarray(format="rgb24")
                decode_ms.append(1000 * (time.process_time() - t))
                frames.append(f)
    safety.detect(frames[0])  # load the model
    screen_ms, cpu_ms = [], []
    for f in frames:
        t, c = time.perf_counter(), time.process_time()
        safety.detect(f)
        screen_ms.append(1000 * (time.perf_counter() - t))
        cpu_ms.append(1000 * (time.process_time() - c))
    ms = statistics.median(cpu_ms)
    dec = statistics.median(decode_ms)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results = {
        "machine": platform.platform(), "cpus": os.cpu_count(), "load_1min": load, "frames": len(frames),
        "cpu_ms_per_screened_frame": round(ms, 1), "wall_ms_per_screened_frame": round(statistics.median(screen_ms), 1),
        "baseline_ms_decode": round(dec, 1), "ratio_screen_to_decode": round(ms / dec, 1),
        "seconds_per_hour_of_video_at_1_per_s": round(ms * 3600 / 1000, 1),
        "screened_10min_30fps": safety.sample_count(18_000, fps=30),
        "screened_1h_30fps": safety.sample_count(108_000, fps=30),
        "screened_1h_src_at_1fps": safety.sample_count(3_600, fps=1),
    }
    for k, v in results.items():
        print(f"{k:<40} {v}")
    out = ROOT / "benchmarks" / "results" / "safety.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
