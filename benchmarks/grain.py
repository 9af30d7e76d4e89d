"""The horizontal grain of a merged face: how much more its fine detail changes from row to row than from column
to column, inside a box of the frame, against dst's own frames in the same run (docs/quality.md, session 23).

    .venv/bin/python benchmarks/grain.py --box Y0:Y1,X0:X1 [--frames F0:F1] DST_VIDEO RESULT_VIDEO...

The figure: the luma's high-pass (minus a Gaussian blur of sigma 1.5 px), then the mean absolute change between
neighbouring rows over that between neighbouring columns, summed over the frames. Skin has about 1.0 (dst's
cheeks in the sample clips: 1.00); parallel horizontal lines (scanlines) raise it, a face whose detail runs mostly
across (lids, lips) sits a little above 1. The boxes used in docs/quality.md: the sample pair's cheeks
`195:235,235:365` (single_face.mp4, every frame) and the second clip's `270:340,340:540` (noface_face.mov, frames
95:169, where the man is in view). Prints each video's figure and its ratio to dst's and writes
benchmarks/results/grain.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np


def row_column_change(grey: np.ndarray) -> tuple[float, float]:
    """(H, W) float32 luma in [0, 1] -> (mean |row-to-row change|, mean |column-to-column change|) of its fine
    detail (the image minus its Gaussian blur of sigma 1.5 px)."""
    fine = grey - cv2.GaussianBlur(grey, (0, 0), 1.5)
    return float(np.abs(np.diff(fine, axis=0)).mean()), float(np.abs(np.diff(fine, axis=1)).mean())


def video_grain(path: Path, box: tuple[int, int, int, int], frames: tuple[int, int]) -> float:
    """The row/column figure of `box` (y0, y1, x0, x1) over frames [f0, f1) of a video."""
    y0, y1, x0, x1 = box
    cap = cv2.VideoCapture(str(path))
    rows = cols = 0.0
    index = -1
    try:
        while True:
            ok, frame = cap.read()
            index += 1
            if not ok or index >= frames[1]:
                break
            if index < frames[0]:
                continue
            grey = cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
            r, c = row_column_change(grey)
            rows, cols = rows + r, cols + c
    finally:
        cap.release()
    if cols == 0:
        raise SystemExit(f"{path}: no frames in {frames[0]}:{frames[1]} (or the box is empty)")
    return rows / cols


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--box", required=True, help="Y0:Y1,X0:X1 in frame pixels")
    ap.add_argument("--frames", default="0:1000000", help="F0:F1, frames F0 to F1 - 1")
    ap.add_argument("dst", type=Path)
    ap.add_argument("results", type=Path, nargs="+")
    args = ap.parse_args()
    ys, xs = args.box.split(",")
    box = (*map(int, ys.split(":")), *map(int, xs.split(":")))
    frames = tuple(map(int, args.frames.split(":")))
    base = video_grain(args.dst, box, frames)
    rows = [{"video": str(args.dst), "grain": round(base, 3), "over_dst": 1.0}]
    print(f"{base:6.3f}  (1.00x)  dst  {args.dst}")
    for path in args.results:
        g = video_grain(path, box, frames)
        rows.append({"video": str(path), "grain": round(g, 3), "over_dst": round(g / base, 3)})
        print(f"{g:6.3f}  ({g / base:.2f}x)  {path}")
    out = Path(__file__).parent / "results" / "grain.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"box": args.box, "frames": args.frames, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
