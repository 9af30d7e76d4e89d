"""How much detail a trained model reproduces (issue: swap quality), in the model's own face space, before any merge.

For each workspace: the faces of data_src/ and data_dst/ cut at the model's resolution and face type (from each
aligned face's frame and landmarks, as the merge cuts them), put through the model, and the Laplacian variance of
the luma in the central half of the face (eyes, nose, mouth) compared:

  * src -> src and dst -> dst: each person's own reconstruction over the real faces, what training asks for
    directly (the DSSIM and MSE losses). The swap cannot be sharper than what the decoders have learned;
  * dst -> src: the swapped face over dst's real faces, the model-space counterpart of the quality report's
    face-detail figure (which measures inside the merged frame);
  * steadiness: dst's frames in order, cut with the merge's smoothed landmarks (4 frames each side): the mean
    frame-to-frame change of the swapped face in the central half over that of dst's own crops, as the model
    gives it, with its code (the inter output) averaged 1-2-1 over neighbouring frames, and with its pixels
    averaged the same way. Below 1: the network is steadier than the footage.

    .venv/bin/python benchmarks/model_detail.py WORKSPACE [WORKSPACE ...] [--faces 80]

Prints one line per workspace and writes benchmarks/results/model_detail.json.
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


def face_crops(ws: Path, side: str, face_type: str, size: int, limit: int) -> np.ndarray:
    """(N, size, size, 3) uint8 RGB faces of `side` cut from their frames as the merge cuts them."""
    from facedouble.faces import align as A
    from facedouble.faces.container import read_record

    out = []
    for path in sorted((ws / side / "aligned").iterdir()):
        record = read_record(path) if path.is_file() else None
        frame = None if record is None else cv2.imread(str(ws / side / record.source_filename))
        if frame is None:
            continue
        m = A.face_matrix(np.asarray(record.source_landmarks, np.float32), face_type, size)
        out.append(A.warp_to_face(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), m, size))
        if len(out) >= limit:
            break
    return np.stack(out)


def centre_detail(faces: np.ndarray) -> float:
    """Mean Laplacian variance of the luma in the central half of (N, S, S, 3) faces in [0, 255]."""
    s = faces.shape[1]
    c = slice(s // 4, 3 * s // 4)
    return float(np.mean([cv2.Laplacian(cv2.cvtColor(f[c, c].astype(np.float32), cv2.COLOR_RGB2GRAY), cv2.CV_32F).var()
                          for f in faces]))


def dst_crops_in_order(ws: Path, face_type: str, size: int) -> np.ndarray:
    """(T, size, size, 3) uint8: dst's frames in order (first face of each), cut with landmarks smoothed over 4
    frames each side as the merge smooths them."""
    from facedouble.faces import align as A
    from facedouble.faces.container import read_record
    from facedouble.merge import temporal as T

    records = {}
    for path in sorted((ws / "data_dst" / "aligned").iterdir()):
        record = read_record(path) if path.is_file() else None
        if record is not None:
            records.setdefault(record.source_filename, record)
    names = sorted(records)
    smooth = T.smooth_landmarks([[np.asarray(records[n].source_landmarks, np.float32)] for n in names], 4)
    out = []
    for name, lms in zip(names, smooth):
        frame = cv2.cvtColor(cv2.imread(str(ws / "data_dst" / name)), cv2.COLOR_BGR2RGB)
        out.append(A.warp_to_face(frame, A.face_matrix(lms[0], face_type, size), size))
    return np.stack(out)


def centre_change(faces: np.ndarray) -> float:
    """Mean absolute change between consecutive (T, S, S, 3) faces in their central half (levels)."""
    s = faces.shape[1]
    c = faces[:, s // 4:3 * s // 4, s // 4:3 * s // 4].astype(np.float32)
    return float(np.abs(c[1:] - c[:-1]).mean())


def smooth121(x):
    """x (T, ...) averaged 1-2-1 with its neighbours in time (the ends kept)."""
    y = x.clone() if hasattr(x, "clone") else x.copy()
    y[1:-1] = 0.25 * x[:-2] + 0.5 * x[1:-1] + 0.25 * x[2:]
    return y


def measure(ws: Path, limit: int) -> dict:
    import torch

    from facedouble.train.swapper import load_swapper

    swapper = load_swapper(ws / "model", "cpu")
    model, size = swapper.model, swapper.resolution
    state = json.loads(next((ws / "model").glob("*_state.json")).read_text())

    def run(faces: np.ndarray, decoder: str) -> np.ndarray:
        x = torch.from_numpy(faces).permute(0, 3, 1, 2).float().div(255.0)
        with torch.no_grad():
            y = getattr(model, decoder)(model.inter(model.encoder(x)))[0].float().clamp(0, 1)
        return y.permute(0, 2, 3, 1).numpy() * 255.0

    src = face_crops(ws, "data_src", swapper.face_type, size, limit)
    dst = face_crops(ws, "data_dst", swapper.face_type, size, limit)
    real_src, real_dst = centre_detail(src.astype(np.float32)), centre_detail(dst.astype(np.float32))
    rec_src, rec_dst = centre_detail(run(src, "decoder_src")), centre_detail(run(dst, "decoder_dst"))
    swap = centre_detail(run(dst, "decoder_src"))
    ordered = dst_crops_in_order(ws, swapper.face_type, size)
    x = torch.from_numpy(ordered).permute(0, 3, 1, 2).float().div(255.0)
    with torch.no_grad():
        z = model.inter(model.encoder(x))
        faces = model.decoder_src(z)[0].float().clamp(0, 1)
        code_smoothed = model.decoder_src(smooth121(z))[0].float().clamp(0, 1)
    as_np = lambda t: t.permute(0, 2, 3, 1).numpy() * 255.0  # noqa: E731
    base = centre_change(ordered)
    steady = {"model": round(centre_change(as_np(faces)) / base, 3),
              "code_averaged": round(centre_change(as_np(code_smoothed)) / base, 3),
              "pixels_averaged": round(centre_change(smooth121(as_np(faces))) / base, 3),
              "detail_code_averaged_over_model": round(centre_detail(as_np(code_smoothed)) / centre_detail(as_np(faces)), 3)}
    return {"workspace": str(ws), "iteration": int(state.get("iteration", 0)), "faces": [len(src), len(dst)],
            "real_src": round(real_src, 1), "real_dst": round(real_dst, 1),
            "src_reconstruction_over_real": round(rec_src / real_src, 3),
            "dst_reconstruction_over_real": round(rec_dst / real_dst, 3),
            "swap_over_dst": round(swap / real_dst, 3), "steadiness_over_dst": steady,
            "laplacian_variance": {"src_reconstruction": round(rec_src, 1), "dst_reconstruction": round(rec_dst, 1),
                                   "swap": round(swap, 1)}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workspaces", nargs="+", type=Path)
    ap.add_argument("--faces", type=int, default=80, help="faces per side")
    args = ap.parse_args()
    rows = []
    for ws in args.workspaces:
        row = measure(ws, args.faces)
        rows.append(row)
        lv = row["laplacian_variance"]
        print(f"{ws.name:28s} iteration {row['iteration']:6d}  src->src {row['src_reconstruction_over_real']:.3f} "
              f"({lv['src_reconstruction']:.0f} of {row['real_src']:.0f})  dst->dst {row['dst_reconstruction_over_real']:.3f} "
              f"({lv['dst_reconstruction']:.0f} of {row['real_dst']:.0f})  dst->src {row['swap_over_dst']:.3f}  "
              f"steadiness {row['steadiness_over_dst']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "model_detail.json"
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)},
                               "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
