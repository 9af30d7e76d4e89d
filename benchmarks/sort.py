"""Sort speed on 1,000 real 512 px faces, extrapolated to 10,000, against the obvious script.

Makes 1,000 aligned faces (whole-face, 512 px, JPEG, record inside, no identity embedding) from ~75 real
faces of the sample media (the woman's and the man's clips): each is cut again from its frame with a small
random rotation, scale and shift (landmarks follow), some mirrored, some softened, brightness varied. Then
times, each on a fresh copy of the folder, in the same run:
  * facedouble `sort` by blur, hist, identity (embeddings computed with dlib; and stored in the records,
    as extraction writes them), face-yaw (records only): cold (no metric cache) and warm (cache filled);
  * the obvious script for the same job: one process, full-size `cv2.imread`, the measure, a Python sort;
    for hist the greedy chain of the original tool (3 x 256-bin `cv2.compareHist` against every face left
    at each step); for identity one dlib embedding per face, then the same clustering.
  * the whole-set ranking on 10,000 rows made from the 1,000 real ones (hist chain, identity clustering),
    since that part grows faster than linearly.
10,000-face figures: a fixed cost (worker start-up) plus a per-face cost fitted on runs of 250 and 1,000
faces, with the set-wide ranking measured at 10,000; the baseline's hist chain grows with the square of
the count. CPU seconds are reported beside wall times (other jobs may share the cores). Prints the figures
and writes benchmarks/results/sort.json.

    .venv/bin/python benchmarks/sort.py [--faces 1000] [--workers 0] [--skip-baseline-identity]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from media import media_dir  # noqa: E402

from facedouble.config import SortConfig  # noqa: E402
from facedouble.faces import align, container  # noqa: E402
from facedouble.faces.container import FaceRecord  # noqa: E402
from facedouble.progress import Reporter  # noqa: E402
from facedouble.sort import metrics, ranking, sort_folder  # noqa: E402
from support.faces import MIRROR_68, dlib_models  # noqa: E402
from support.media import frames  # noqa: E402

SIZE = 512


def sources(media: Path):
    """(frame, 68 landmarks, embedding) of ~75 real faces."""
    m = dlib_models()
    out = []
    for video, every in (("WolfgangLanger_Pexels.mp4", 8), ("single_face.mp4", 4)):
        for _, frame in frames(media / video, every):
            rects = m.detector(frame, 0)
            if len(rects) != 1:
                continue
            shape = m.predictor(frame, rects[0])
            lm = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
            emb = np.asarray(m.recognizer.compute_face_descriptor(frame, shape), np.float32)
            out.append((frame, lm, emb, (rects[0].left(), rects[0].top(), rects[0].right(), rects[0].bottom())))
    return out


def make_faces(srcs, dest: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        frame, lm, emb, rect = srcs[i % len(srcs)]
        base = align.face_matrix(lm, "whole-face", SIZE)
        angle, scale = rng.uniform(-8, 8), rng.uniform(0.95, 1.05)
        jitter = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), angle, scale)
        jitter[:, 2] += rng.uniform(-0.03, 0.03, 2) * SIZE
        mat = align.compose(jitter, base)
        image = align.warp_to_face(frame, mat, SIZE)
        points = align.transform_points(lm, mat)
        if rng.random() < 0.3:
            image = np.ascontiguousarray(image[:, ::-1])
            points = points[MIRROR_68].copy()
            points[:, 0] = SIZE - 1 - points[:, 0]
            mat = np.array([[-1.0, 0, SIZE - 1], [0, 1.0, 0]]) @ align.to3(mat)
        if rng.random() < 0.3:
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 2.0))
        image = np.clip(image.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15), 0, 255).astype(np.uint8)
        rec = FaceRecord(face_type="whole-face", size=SIZE, landmarks=points, source_landmarks=lm, matrix=mat,
                         source_filename=f"{i + 1:06d}.png", source_rect=rect,
                         source_size=(frame.shape[1], frame.shape[0]), extra={"bench_source": i % len(srcs)})
        container.write_face(dest / f"{i + 1:06d}_0.jpg", image, rec, jpeg_quality=int(rng.integers(90, 98)))


def with_identities(folder: Path, srcs) -> None:
    for p in folder.iterdir():
        rec = container.read_record(p)
        container.update_record(p, replace(rec, identity=srcs[rec.extra["bench_source"]][2]))


def fresh(template: Path, work: Path) -> Path:
    if work.exists():
        shutil.rmtree(work)
    aligned = work / "aligned"
    shutil.copytree(template, aligned)
    return aligned


class Clock:
    """Wall time, CPU time of this process, and CPU time of finished child processes (the worker pool)."""

    def __enter__(self):
        self.t = time.perf_counter()
        self.r0 = resource.getrusage(resource.RUSAGE_SELF)
        self.c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return self

    def __exit__(self, *exc):
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.wall = time.perf_counter() - self.t
        self.cpu = (r1.ru_utime + r1.ru_stime) - (self.r0.ru_utime + self.r0.ru_stime)
        self.child_cpu = (c1.ru_utime + c1.ru_stime) - (self.c0.ru_utime + self.c0.ru_stime)

    def two_core_estimate(self, workers: int) -> float:
        """Wall time on two free cores: this process's CPU plus the workers' CPU shared by the workers."""
        return self.cpu + self.child_cpu / max(1, min(2, workers))


def ours(template: Path, work: Path, by: str, workers: int) -> dict:
    aligned = fresh(template, work)
    cfg = SortConfig(by=by, workers=workers)
    nw = workers or os.cpu_count() or 1
    with Clock() as cold:
        res = sort_folder(aligned, cfg, reporter=Reporter())
    with Clock() as warm:
        res2 = sort_folder(aligned, cfg, reporter=Reporter())
    assert len(res.order) == len(res2.order) and res2.measured == 0
    return {"cold_s": cold.wall, "cold_cpu_s": cold.cpu + cold.child_cpu, "cold_2core_s": cold.two_core_estimate(nw),
            "warm_s": warm.wall, "warm_cpu_s": warm.cpu + warm.child_cpu, "measured": res.measured}


# -- the obvious script -------------------------------------------------------------------------------

def baseline_blur(folder: Path) -> float:
    t = time.perf_counter()
    scores = []
    for p in sorted(folder.iterdir()):
        img = cv2.imread(str(p))
        rec = container.read_record(p)
        mask = np.zeros(img.shape[:2], np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(rec.landmarks.astype(np.int32)), 1)
        lap = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_64F)
        scores.append((lap[mask > 0].var(), p.name))
    sorted(scores, reverse=True)
    return time.perf_counter() - t


def baseline_hist(folder: Path) -> tuple[float, float]:
    """(seconds to measure, seconds for the O(N^2) compareHist chain)."""
    t = time.perf_counter()
    hists = []
    for p in sorted(folder.iterdir()):
        img = cv2.imread(str(p))
        hists.append([cv2.calcHist([img], [c], None, [256], [0, 256]) for c in range(3)])
    measure = time.perf_counter() - t
    t = time.perf_counter()
    n = len(hists)
    order = list(range(n))
    for i in range(n - 1):
        best, best_j = float("inf"), i + 1
        hi = hists[order[i]]
        for j in range(i + 1, n):
            hj = hists[order[j]]
            score = sum(cv2.compareHist(hi[c], hj[c], cv2.HISTCMP_BHATTACHARYYA) for c in range(3))
            if score < best:
                best, best_j = score, j
        order[i + 1], order[best_j] = order[best_j], order[i + 1]
    return measure, time.perf_counter() - t


def baseline_identity(folder: Path) -> float:
    import dlib

    m = dlib_models()
    t = time.perf_counter()
    emb = []
    for p in sorted(folder.iterdir()):
        img = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        lm = container.read_record(p).landmarks
        rect = dlib.rectangle(*(int(v) for v in lm.min(0)), *(int(v) for v in lm.max(0)))
        shape = dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in lm])
        emb.append(np.asarray(m.recognizer.compute_face_descriptor(img, shape)))
    ranking.cluster_identities(np.array(emb))
    return time.perf_counter() - t


# -- ranking at 10,000 -----------------------------------------------------------------------------------

def rank_times(folder: Path, srcs, n_big: int) -> dict:
    rng = np.random.default_rng(1)
    hists = []
    for p in sorted(folder.iterdir()):
        image, rec = container.read_face(p)
        work, _ = metrics.working_copy(image, rec.landmarks)
        hists.append(metrics.color_histogram(work))
    hists = np.array(hists)
    embs = np.array([srcs[container.read_record(p).extra["bench_source"]][2] for p in sorted(folder.iterdir())])
    embs = embs + rng.normal(0, 0.02, embs.shape)
    reps = -(-n_big // len(hists))
    big_h = np.clip(np.tile(hists, (reps, 1))[:n_big] * rng.uniform(0.9, 1.1, (n_big, hists.shape[1])), 0, None)
    big_e = np.tile(embs, (reps, 1))[:n_big] + rng.normal(0, 0.02, (n_big, embs.shape[1]))
    out = {}
    for label, h, e in (("1k", hists, embs), ("10k", big_h, big_e)):
        f = metrics.histogram_features(h)
        t = time.perf_counter()
        ranking.nearest_neighbour_chain(f)
        out[f"hist_{label}_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ranking.dissimilarity_scores(f)
        out[f"hist_dissim_{label}_s"] = time.perf_counter() - t
        t = time.perf_counter()
        labels = ranking.cluster_identities(e)
        ranking.identity_order(e, labels)
        out[f"identity_{label}_s"] = time.perf_counter() - t
        out[f"identity_{label}_groups"] = int(labels.max()) + 1
    return out


def subset(template: Path, dest: Path, count: int) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for p in sorted(template.iterdir())[:count]:
        shutil.copy2(p, dest / p.name)
    return dest


def fit(small: float, large: float, n_small: int, n_large: int, n: int) -> float:
    """Time at `n` faces from times at two sizes: fixed cost (worker start-up) plus a cost per face."""
    per_face = (large - small) / (n_large - n_small)
    return max(large + per_face * (n - n_large), 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=0, help="worker processes (0 = one per core)")
    ap.add_argument("--skip-baseline-identity", action="store_true", help="skip the slow serial identity baseline")
    args = ap.parse_args()
    n = args.faces
    n_small = n // 4
    big = 10_000
    per_k = 1000.0 / n
    workers = args.workers or os.cpu_count() or 1
    load_before = os.getloadavg()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="fd-bench-sort-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        srcs = sources(media_dir())
        template = tmp / "faces"
        make_faces(srcs, template, n)
        stored = tmp / "faces_with_identity"
        shutil.copytree(template, stored)
        with_identities(stored, srcs)
        small = {template: subset(template, tmp / "faces_small", n_small),
                 stored: subset(stored, tmp / "faces_with_identity_small", n_small)}
        print(f"made {n} faces of {SIZE} px from {len(srcs)} real ones in {time.perf_counter() - t:.1f} s "
              f"(load average {load_before[0]:.1f} on {os.cpu_count()} cores)")

        ranks = rank_times(template, srcs, big)
        print("ranking: " + ", ".join(f"{k} {v:.2f}" for k, v in ranks.items()))
        rank_n = {"hist": ranks["hist_1k_s"], "identity": ranks["identity_1k_s"]}
        rank_big = {"hist": ranks["hist_10k_s"], "identity": ranks["identity_10k_s"]}

        for by, folder, label in (("blur", template, "blur"), ("hist", template, "hist"),
                                  ("face-yaw", template, "face-yaw"), ("identity", stored, "identity (stored)"),
                                  ("identity", template, "identity (computed)")):
            r_small = ours(small[folder], tmp / "work", by, args.workers)
            r = ours(folder, tmp / "work", by, args.workers)
            row = {"cold_s_per_1k": r["cold_s"] * per_k, "warm_s_per_1k": r["warm_s"] * per_k,
                   "cold_cpu_s_per_1k": r["cold_cpu_s"] * per_k, "warm_cpu_s_per_1k": r["warm_cpu_s"] * per_k,
                   "cold_2core_estimate_s_per_1k": r["cold_2core_s"] * per_k}
            # 10,000 faces: fixed + per-face cost fitted on the two sizes, with the set-wide ranking (which
            # grows faster than linearly) replaced by its time measured at 10,000
            extra = rank_big.get(by, 0.0) - rank_n.get(by, 0.0) * big / n
            for key, src in (("extrapolated_10k_s", "cold_s"), ("extrapolated_10k_2core_estimate_s", "cold_2core_s"),
                             ("extrapolated_10k_cpu_s", "cold_cpu_s"), ("extrapolated_10k_warm_s", "warm_s")):
                row[key] = fit(r_small[src], r[src], n_small, n, big) + extra
            results[label] = row
            print(f"{label:20s} cold {row['cold_s_per_1k']:7.2f} s/1k (cpu {row['cold_cpu_s_per_1k']:7.2f}, "
                  f"2 free cores ~{row['cold_2core_estimate_s_per_1k']:6.2f})   warm {row['warm_s_per_1k']:6.2f} s/1k")

        with Clock() as c:
            baseline_blur(template)
        results["blur"].update(baseline_s_per_1k=c.wall * per_k, baseline_cpu_s_per_1k=c.cpu * per_k,
                               baseline_10k_s=c.wall * big / n, baseline_10k_cpu_s=c.cpu * big / n)
        with Clock() as c:
            b_measure, b_chain = baseline_hist(template)
        chain_share = b_chain / max(b_measure + b_chain, 1e-9)
        results["hist"].update(baseline_s_per_1k=c.wall * per_k, baseline_cpu_s_per_1k=c.cpu * per_k,
                               baseline_10k_s=b_measure * big / n + b_chain * (big / n) ** 2,
                               baseline_10k_cpu_s=c.cpu * ((1 - chain_share) * big / n + chain_share * (big / n) ** 2))
        if not args.skip_baseline_identity:
            with Clock() as c:
                baseline_identity(template)
            results["identity (computed)"].update(baseline_s_per_1k=c.wall * per_k, baseline_cpu_s_per_1k=c.cpu * per_k,
                                                  baseline_10k_s=c.wall * big / n, baseline_10k_cpu_s=c.cpu * big / n)
    load_after = os.getloadavg()

    print(f"\n{'10,000 faces':20s} {'wall est.':>10s} {'2 free cores':>13s} {'warm':>7s} {'cpu':>8s} "
          f"{'baseline wall':>14s} {'baseline cpu':>13s} {'x less cpu':>11s}")
    for label, r in results.items():
        if "baseline_10k_cpu_s" in r:
            r["cpu_ratio_10k"] = r["baseline_10k_cpu_s"] / r["extrapolated_10k_cpu_s"]
            r["wall_ratio_10k"] = r["baseline_10k_s"] / r["extrapolated_10k_s"]
        print(f"{label:20s} {r['extrapolated_10k_s']:10.1f} {r['extrapolated_10k_2core_estimate_s']:13.1f} "
              f"{r['extrapolated_10k_warm_s']:7.1f} {r['extrapolated_10k_cpu_s']:8.1f} "
              f"{r.get('baseline_10k_s', float('nan')):14.1f} {r.get('baseline_10k_cpu_s', float('nan')):13.1f} "
              f"{r.get('cpu_ratio_10k', float('nan')):11.2f}")
    out = {
        "benchmark": "sort", "faces": n, "faces_small": n_small, "face_size": SIZE, "workers": workers,
        "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(), "load_average_before": load_before, "load_average_after": load_after,
        "methods": results, "ranking": ranks,
        "notes": "Seconds. cold = no metric cache; warm = cache filled (a re-sort). 10k figures: fixed + per-face cost "
                 "fitted on runs of faces_small and faces, with the set-wide ranking measured at 10,000 rows. "
                 "cpu = CPU seconds of this process and its worker processes. 2core_estimate = this process's CPU + "
                 "the workers' CPU / 2: the wall time to expect on two cores nobody else uses. Other jobs shared the "
                 "machine's cores during the run (load averages recorded), which inflates every wall time; compare "
                 "CPU seconds. baseline = the obvious script: one process, full-size imread, the original tool's "
                 "greedy hist chain (3 x 256-bin compareHist against every face left, O(N^2)), one dlib embedding "
                 "per face.",
    }
    dest = ROOT / "benchmarks" / "results" / "sort.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {dest}")


if __name__ == "__main__":
    main()
