"""XSeg on the woman's clip (hand over the mouth): IoU of the applied XSeg mask with labels on held-back faces,
against the mesh-with-hands mask (the merge's `mesh-dst` mask) on the same faces, in the same run.

Workspace: a copy of a prepared workspace (default /tmp/q/base: WolfgangLanger_Pexels.mp4 as src, frames and
aligned whole-face faces); only data_src/ is copied and nothing is written to the original.

Labels ("drawn" programmatically, then written with `xseg labels import`):
  * include: the face oval of the 478-point face mesh (MediaPipe) found on the aligned face;
  * exclude: the hand's silhouette from the 21 hand landmarks that MediaPipe Hands tracks through the src
    frames in order (video mode): each finger bone a capsule of the finger's width (1/5 of the palm width),
    the palm the filled polygon of wrist and knuckles, mapped into the aligned face by the record's matrix,
    traced as polygons (cv2.findContours).
  This is what a person draws around a hand (the fingers, not the hull of the whole hand with the face
  between the fingers), and it differs from the baseline mask in exactly the way a labeller corrects it.
Baseline: the mesh-with-hands mask, the face oval less the convex hull of the same hand landmarks grown by
12 % of the hand's size and softened (merge.mask.hand_mask), thresholded at 0.5.

Faces with a hand over the face are split: `--train-hands` labelled for training, the rest held back; a few
faces without hands are labelled as well (evenly spread), and some more held back. XSeg is trained with the
default recipe (mesh pseudo-label pretraining + strong augmentation), applied to src, and each held-back
face's applied mask (thresholded at 0.5) is compared with its labels.

    nice -n 19 .venv/bin/python benchmarks/xseg.py [--base /tmp/q/base] [--iterations 600] [--max-minutes 30]

Prints the figures and writes benchmarks/results/xseg.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from facedouble.config import XSegTrainConfig  # noqa: E402
from facedouble.faces import meta  # noqa: E402
from facedouble.merge import mask as K  # noqa: E402
from facedouble.progress import Reporter  # noqa: E402
from facedouble.workspace import Workspace  # noqa: E402
from facedouble.xseg import apply as A  # noqa: E402
from facedouble.xseg import labels as L  # noqa: E402
from facedouble.xseg import train as T  # noqa: E402

# MediaPipe hand skeleton: finger chains from the wrist (0)
FINGERS = [[0, 1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [17, 18, 19, 20]]
PALM = [0, 1, 5, 9, 13, 17]


def hand_silhouette(hands: list[np.ndarray], m: np.ndarray, size: int) -> np.ndarray:
    """(size, size) uint8 {0, 1}: the hands drawn as a labeller would, fingers as capsules, palm filled."""
    import cv2

    out = np.zeros((size, size), np.uint8)
    for pts in hands:
        p = np.asarray(pts, np.float64) @ np.asarray(m, np.float64)[:, :2].T + np.asarray(m, np.float64)[:, 2]
        palm_w = float(np.linalg.norm(p[5] - p[17]))
        width = max(2, int(round(palm_w / 4.0)))
        cv2.fillPoly(out, [np.round(p[PALM]).astype(np.int32)], 1)
        for chain in FINGERS:
            for a, b in zip(chain[:-1], chain[1:]):
                cv2.line(out, tuple(np.round(p[a]).astype(int)), tuple(np.round(p[b]).astype(int)), 1, width)
            tip = np.round(p[chain[-1]]).astype(int)
            cv2.circle(out, tuple(tip), width // 2, 1, -1)
    return out


def polygons(binary: np.ndarray) -> list:
    import cv2

    contours, _ = cv2.findContours(binary.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2).astype(float).tolist() for c in contours if len(c) >= 3]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="/tmp/q/base", help="prepared workspace (copied, never written)")
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--pretrain", type=int, default=200)
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--train-hands", type=int, default=8, help="hand faces labelled for training")
    ap.add_argument("--train-plain", type=int, default=8, help="faces without a hand labelled for training")
    ap.add_argument("--keep", default=None, help="keep the workspace here (default: a temporary folder)")
    args = ap.parse_args()
    import cv2

    started = time.monotonic()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="xseg_bench_"))
    ws = Workspace(tmp / "ws")
    if not ws.aligned("src").is_dir():
        ws.create()
        shutil.rmtree(ws.frames("src"))
        shutil.copytree(Path(args.base) / "data_src", ws.frames("src"))
    faces = ws.face_files("src")
    recs = {f.name: meta.read_record(f) for f in faces}

    # hands through the src frames in order (tracked), mesh on each aligned face
    t0 = time.monotonic()
    tracker = K.HandTracker(video=True)
    hands_by_frame: dict[str, list] = {}
    for frame_path in ws.frame_files("src"):
        img = cv2.cvtColor(cv2.imread(str(frame_path)), cv2.COLOR_BGR2RGB)
        hands_by_frame[frame_path.name] = tracker(img)
    tracker.close()
    labels, baseline, hand_faces, plain_faces = {}, {}, [], []
    for f in faces:
        rec = recs[f.name]
        image, _ = meta.read_face(f)
        pts = K.face_mesh(image)
        if pts is None:
            continue
        oval = (K.mesh_mask(pts, (rec.size, rec.size)) > 0.5).astype(np.uint8)
        hands = hands_by_frame.get(rec.source_filename, [])
        sil = hand_silhouette(hands, rec.matrix, rec.size)
        over = int((sil & oval).sum())
        include = polygons(oval)
        exclude = polygons(sil) if over else []
        labels[f.name] = {"include": include, "exclude": exclude}
        base = K.mesh_mask(pts, (rec.size, rec.size))
        if hands:
            base = base * (1.0 - K.hand_mask(hands, rec.matrix, rec.size))
        baseline[f.name] = base
        (hand_faces if over > 0.02 * oval.sum() else plain_faces).append(f.name)
    prep_s = time.monotonic() - t0

    # split: labelled for training / held back (alternating through the clip)
    train_hand = hand_faces[::2][:args.train_hands]
    held_hand = [n for n in hand_faces if n not in train_hand]
    step = max(1, len(plain_faces) // (2 * max(1, args.train_plain)))
    train_plain = plain_faces[::step][::2][:args.train_plain]
    held_plain = [n for n in plain_faces[::step][1::2] if n not in train_plain][:max(4, len(held_hand))]
    L.import_labels(ws, "src", {n: labels[n] for n in train_hand + train_plain})

    t0 = time.monotonic()
    cfg = XSegTrainConfig(target_iteration=args.iterations, pretrain_iterations=args.pretrain)
    res = T.train_xseg(ws, cfg, reporter=Reporter(),
                       max_seconds=None if args.max_minutes is None else args.max_minutes * 60)
    train_s = time.monotonic() - t0
    A.apply_xseg(ws, "src")

    rows = []
    for group, names in (("hand", held_hand), ("plain", held_plain)):
        for n in names:
            rec = meta.read_record(ws.aligned("src") / n)
            truth = K.label_mask(labels[n]["include"], labels[n]["exclude"], rec.size)
            applied = cv2.resize(meta.xseg_mask_array(rec), (rec.size, rec.size), interpolation=cv2.INTER_LINEAR)
            rows.append({"face": n, "group": group, "xseg": iou(applied, truth), "mesh_hands": iou(baseline[n], truth)})

    def mean(key: str, group: str | None = None) -> float:
        vals = [r[key] for r in rows if group is None or r["group"] == group]
        return float(np.mean(vals)) if vals else float("nan")

    out = {
        "faces": len(faces), "hand_faces": len(hand_faces), "labelled": len(train_hand) + len(train_plain),
        "held_back": {"hand": len(held_hand), "plain": len(held_plain)},
        "iterations": res.iteration, "train_seconds": round(train_s, 1), "prepare_seconds": round(prep_s, 1),
        "loss_on_labels": [round(res.loss_before, 4), round(res.loss_after, 4)],
        "iou_xseg": {"all": mean("xseg"), "hand": mean("xseg", "hand"), "plain": mean("xseg", "plain")},
        "iou_mesh_hands": {"all": mean("mesh_hands"), "hand": mean("mesh_hands", "hand"),
                           "plain": mean("mesh_hands", "plain")},
        "rows": rows, "load_average": os.getloadavg(), "wall_seconds": round(time.monotonic() - started, 1),
    }
    print(f"faces {out['faces']} (hand over the face: {out['hand_faces']}); labelled {out['labelled']}; held back "
          f"{len(held_hand)} hand + {len(held_plain)} plain")
    print(f"XSeg trained {res.iteration} iterations in {train_s:.0f} s (loss on labels {res.loss_before:.3f} -> "
          f"{res.loss_after:.3f})")
    for g in ("all", "hand", "plain"):
        print(f"IoU with labels, held back ({g:5}): applied XSeg {out['iou_xseg'][g]:.3f}   "
              f"mesh-with-hands {out['iou_mesh_hands'][g]:.3f}")
    print(f"load average {os.getloadavg()[0]:.1f}; wall {out['wall_seconds']:.0f} s")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "xseg.json").write_text(json.dumps(out, indent=1))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
