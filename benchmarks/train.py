"""Training speed and memory on this CPU: facedouble's training step against the same model without its
speed-ups, in the same run.

For each preset (lean96 and h64 with 30 timed iterations, cpu192 and quick96 with 20; h128 and sae with 8; df and liaef128 with 3), on
real aligned faces of the sample media (the woman as src, the man as dst; made with dlib like the tests):
  * fast      what `facedouble train` does on a CPU: bf16 autocast, channels-last, one loader thread making
              batches ahead, model threads chosen by timing (ThreadTuner: all cores unless others compete)
  * baseline  the same model and batches in float32, contiguous layout, batches made in the training thread
              (no loader worker), model threads = cores
cpu192 (the default) also runs the alternatives that the defaults were chosen against: a loader *process* instead of a
thread, no loader worker, all threads fixed, one thread fixed (torch.compile is not tried: DESIGN measured it
slower here).

A sample is one src face and one dst face through forward, losses, backward and Adam (batch size x
iterations per second; faceswap's "EGs/s" counts the same way). Each configuration runs in its own process,
so its peak resident memory (ru_maxrss) is its own. Other jobs sharing the two cores slow the wall clock
several-fold at times, so the modes run in interleaved rounds (cpu192, quick96, lean96 and h64: 3, h128 and sae: 2) and the
best round is reported beside the median; CPU seconds per iteration and the load average are recorded too.
Prints the figures and writes benchmarks/results/train.json.

    .venv/bin/python benchmarks/train.py [--presets cpu192,h64,...] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

FACES = ROOT / ".cache" / "train_bench_faces"
ITERATIONS = {"cpu192": 20, "lean96": 30, "quick96": 20, "h64": 30, "h128": 8, "sae": 8, "df": 3, "liaef128": 3}
CORES = os.cpu_count() or 1
# threads 0 = train()'s automatic choice (ThreadTuner: all cores, or half while other programs compete)
MODES = {
    "fast": dict(amp=True, channels_last=True, workers=1, processes=False, threads=0),
    "baseline": dict(amp=False, channels_last=False, workers=0, processes=False, threads=CORES),
    "fast_loader_process": dict(amp=True, channels_last=True, workers=1, processes=True, threads=0),
    "fast_no_loader_worker": dict(amp=True, channels_last=True, workers=0, processes=False, threads=0),
    "fast_all_threads_fixed": dict(amp=True, channels_last=True, workers=1, processes=False, threads=CORES),
    "fast_one_thread_fixed": dict(amp=True, channels_last=True, workers=1, processes=False, threads=1),
}
EXTRA_MODES = ("fast_loader_process", "fast_no_loader_worker", "fast_all_threads_fixed", "fast_one_thread_fixed")


def faces() -> dict[str, Path]:
    from media import media_dir
    from support.facesets import build_faces

    return build_faces(FACES, media_dir())


def run_one(preset: str, mode: str, iterations: int, warmup: int = 3) -> dict:
    """Time `iterations` training steps of `preset` in `mode` (in this process)."""
    import numpy as np
    import torch

    from facedouble.config import TrainConfig
    from facedouble.train.options import resolve_options
    from facedouble.train.samples import BatchMaker, Prefetcher, load_faceset
    from facedouble.train.trainer import TrainSession, _cv2_threads, sample_options

    from facedouble.train.trainer import ThreadTuner

    m = MODES[mode]
    folders = faces()
    import tempfile

    opts, _ = resolve_options(Path(tempfile.mkdtemp()), TrainConfig(
        model=preset, seed=0, amp=m["amp"], channels_last=m["channels_last"], workers=m["workers"]))
    src = load_faceset(sorted(folders["src"].glob("*.jpg")), "src", opts.face_type, opts.resolution)
    dst = load_faceset(sorted(folders["dst"].glob("*.jpg")), "dst", opts.face_type, opts.resolution)
    session = TrainSession(opts, torch.device("cpu"))
    tuner = ThreadTuner(m["threads"], torch.device("cpu"))
    if m["threads"] == 0:
        warmup = tuner.next_probe + 2 * (tuner.probe + 1)  # the tuner's first probe happens in the warm-up
    maker = BatchMaker(src, dst, opts.batch_size, opts.seed, sample_options(opts))
    walls, cpus, losses = [], [], []
    with _cv2_threads(1), Prefetcher(maker, 0, m["workers"], processes=m["processes"]) as loader:
        for i in range(warmup + iterations):
            t, c = time.perf_counter(), time.process_time()
            batch = loader.get()
            tuner.before_step(i)
            t1 = time.perf_counter()
            s, d = session.step(batch, i)
            tuner.after_step(i, time.perf_counter() - t1)
            if i >= warmup:
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
                losses.append(s + d)
    wall = float(np.sum(walls))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "preset": preset, "mode": mode, "batch_size": opts.batch_size, "resolution": opts.resolution,
        "parameters_M": round(session.parameters / 1e6, 2), "iterations": iterations,
        "samples_per_s": round(opts.batch_size * iterations / wall, 2),
        "ms_per_iteration": round(1000 * wall / iterations, 1),
        "cpu_s_per_iteration": round(float(np.mean(cpus)), 3),
        "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loader_process_peak_rss_MB": round(children.ru_maxrss / 1024, 1) if m["processes"] else None,
        "threads": torch.get_num_threads(), "loss_finite": bool(np.all(np.isfinite(losses))),
    }


def augmentation_ms() -> dict:
    """CPU milliseconds per 96 px sample of the augmentation alone (warp, flip, masks), one core."""
    import cv2

    from facedouble.train.samples import BatchMaker, SampleOptions, load_faceset

    folders = faces()
    src = load_faceset(sorted(folders["src"].glob("*.jpg")), "src", "full", 96)
    dst = load_faceset(sorted(folders["dst"].glob("*.jpg")), "dst", "full", 96)
    cv2.setNumThreads(1)
    out = {}
    for name, opts in (("warp_flip_masks", SampleOptions()), ("with_eyes_mouth", SampleOptions(eyes_mouth=True)),
                       ("with_rct", SampleOptions(color_transfer="rct"))):
        maker = BatchMaker(src, dst, 16, 0, opts)
        maker.make(0)
        t = time.process_time()
        for i in range(20):
            maker.make(i)
        out[name] = round((time.process_time() - t) / (20 * 32) * 1000, 3)
    return out


def spawn(preset: str, mode: str, iterations: int) -> dict:
    cmd = [sys.executable, __file__, "--one", json.dumps([preset, mode, iterations])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"{preset}/{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


ROUNDS = {"cpu192": 3, "lean96": 3, "quick96": 3, "h64": 3, "h128": 2, "sae": 2, "df": 1, "liaef128": 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="cpu192,quick96,lean96,h64,h128,sae,df,liaef128")
    ap.add_argument("--quick", action="store_true", help="a third of the iterations, one round")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        preset, mode, iterations = json.loads(args.one)
        print(json.dumps(run_one(preset, mode, iterations)))
        return

    faces()  # made once, before the timed processes
    load_before = os.getloadavg()
    runs, summary = [], {}
    print(f"{'preset':9} {'mode':22} {'best/s':>7} {'median/s':>8} {'ms/it':>7} {'cpu s/it':>8} {'peak MB':>8}  params")
    for preset in args.presets.split(","):
        iters = max(2, ITERATIONS[preset] // (3 if args.quick else 1))
        rounds = 1 if args.quick else ROUNDS[preset]
        modes = ["baseline", "fast"] + (list(EXTRA_MODES) if preset == "cpu192" else [])
        got: dict[str, list[dict]] = {m: [] for m in modes}
        for r in range(rounds):  # interleaved, order reversed every other round: drifts in the machine's load
            for mode in (modes if r % 2 == 0 else modes[::-1]):  # hit every mode alike
                res = spawn(preset, mode, iters)
                res["round"] = r
                got[mode].append(res)
                runs.append(res)
        summary[preset] = {}
        for mode in modes:
            rs = got[mode]
            best = max(rs, key=lambda x: x["samples_per_s"])
            med = round(statistics.median(x["samples_per_s"] for x in rs), 2)
            summary[preset][mode] = {"best_samples_per_s": best["samples_per_s"], "median_samples_per_s": med,
                                     "best_ms_per_iteration": best["ms_per_iteration"],
                                     "min_cpu_s_per_iteration": min(x["cpu_s_per_iteration"] for x in rs),
                                     "peak_rss_MB": max(x["peak_rss_MB"] for x in rs)}
            print(f"{preset:9} {mode:22} {best['samples_per_s']:7.2f} {med:8.2f} {best['ms_per_iteration']:7.0f} "
                  f"{summary[preset][mode]['min_cpu_s_per_iteration']:8.3f} {summary[preset][mode]['peak_rss_MB']:8.0f}"
                  f"  {best['parameters_M']} M", flush=True)
        base = summary[preset]["baseline"]["best_samples_per_s"]
        for mode in modes:
            summary[preset][mode]["speedup_vs_baseline"] = round(summary[preset][mode]["best_samples_per_s"] / base, 2)
        print(f"{preset:9} speed vs baseline (best of {rounds}): " + ", ".join(
            f"{m} x{summary[preset][m]['speedup_vs_baseline']}" for m in modes if m != "baseline"), flush=True)
    aug = augmentation_ms()
    print("augmentation, CPU ms per 96 px sample: " + ", ".join(f"{k} {v}" for k, v in aug.items()))
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in os.getloadavg()]},
        "definition": "a sample = one src + one dst face through forward, losses, backward, Adam step; "
                      "best = the least disturbed of the interleaved rounds",
        "summary": summary, "runs": runs, "augmentation_cpu_ms_per_sample": aug,
    }
    out = ROOT / "benchmarks" / "results" / "train.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
