"""Loss speed on this CPU: the training losses' Gaussian blur as two products with banded matrices (what
train/losses.py does) against the same blur as a depthwise convolution (what it did before session 13), in the
same run.

For the face loss (DSSIM + MSE, the largest share of the losses), the detail loss and the texture loss at the
default preset's size (batch 8, 3 x 192 x 192, forward and backward, float32 as the trainer computes losses), and
for whole liae192 training steps on real aligned faces (bf16 autocast, channels-last: what `facedouble train`
does; the losses of both sides, the backward through the model and Adam). Both blurs give the same values (the
largest difference is printed). The two ways run in interleaved rounds and the median round is reported with
the ratio, since other jobs on the two cores slow the wall clock at times. Prints the figures and writes
benchmarks/results/losses.json.

    .venv/bin/python benchmarks/losses.py [--rounds 5] [--steps 10]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))

RESULTS = ROOT / "benchmarks" / "results" / "losses.json"


def conv_blur(x, k1d, reflect: bool = False):
    """The baseline: the same separable blur as two depthwise convolutions (reflect padding first when asked)."""
    import torch.nn.functional as F

    if reflect:
        pad = len(k1d) // 2
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    k1d = k1d.to(x.device, x.dtype)
    c = x.shape[1]
    kx = k1d.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = k1d.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)


def timed(fn, repeat: int) -> float:
    """Milliseconds per call of fn() (after one warm-up call)."""
    fn()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return 1000 * (time.perf_counter() - t) / repeat


def loss_calls():
    import torch

    from facedouble.train import losses as L

    g = torch.Generator().manual_seed(0)
    target = torch.nn.functional.interpolate(torch.rand(8, 3, 24, 24, generator=g), size=(192, 192), mode="bilinear")
    pred = (target + 0.05 * torch.randn(target.shape, generator=g)).requires_grad_(True)
    mask = torch.ones(8, 1, 192, 192)

    def call(f):
        def run():
            pred.grad = None
            f().sum().backward()
        return run

    return {
        "face_loss": call(lambda: L.face_loss(pred, target, mask)),
        "detail_loss": call(lambda: L.detail_loss(pred, target, mask, 10.0)),
        "texture_loss": call(lambda: L.texture_loss(pred, target, mask, 20.0)),
    }, (pred, target, mask)


def train_batches(steps: int):
    """liae192's options for a new model (seed 0, texture power 20, so every blur runs) and `steps` training
    batches of real aligned faces."""
    import tempfile

    from facedouble.config import TrainConfig
    from facedouble.train.options import resolve_options
    from facedouble.train.samples import BatchMaker, load_faceset
    from facedouble.train.trainer import sample_options
    from media import media_dir
    from support.facesets import build_faces

    folders = build_faces(ROOT / ".cache" / "train_bench_faces", media_dir())  # shared with benchmarks/train.py
    opts, _ = resolve_options(Path(tempfile.mkdtemp()), TrainConfig(model="liae192", seed=0, texture_power=20.0))
    src = load_faceset(sorted(folders["src"].glob("*.jpg")), "src", opts.face_type, opts.resolution)
    dst = load_faceset(sorted(folders["dst"].glob("*.jpg")), "dst", opts.face_type, opts.resolution)
    maker = BatchMaker(src, dst, opts.batch_size, opts.seed, sample_options(opts))
    return opts, [maker.make(i) for i in range(steps)]


def stepper(session, batches):
    """A function running one training step of `session` on each of `batches`."""
    def run():
        for i, b in enumerate(batches):
            session.step(b, i)
    return run


def train_steps(steps: int):
    """A function running `steps` liae192 training steps on real faces (see train_batches)."""
    import torch

    from facedouble.train.trainer import TrainSession

    opts, batches = train_batches(steps)
    return stepper(TrainSession(opts, torch.device("cpu")), batches)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="training steps per round")
    args = ap.parse_args(argv)
    import torch

    from facedouble.train import losses as L

    matmul_blur = L._blur
    blurs = {"matmul": matmul_blur, "conv": conv_blur}
    calls, (pred, target, mask) = loss_calls()
    same = {}
    for name, f in (("face_loss", lambda: L.face_loss(pred, target, mask)),
                    ("texture_loss", lambda: L.texture_loss(pred, target, mask, 20.0))):
        with torch.no_grad():
            values = {}
            for way, blur in blurs.items():
                L._blur = blur
                values[way] = f()
            same[name] = float((values["matmul"] - values["conv"]).abs().max())
    L._blur = matmul_blur
    step = train_steps(args.steps)
    times = {k: {way: [] for way in blurs} for k in [*calls, "train_step"]}
    for _ in range(args.rounds):
        for way, blur in blurs.items():
            L._blur = blur
            for name, fn in calls.items():
                times[name][way].append(timed(fn, 5))
            times["train_step"][way].append(timed(step, 1) / args.steps)
    L._blur = matmul_blur
    rows = {}
    for name, by_way in times.items():
        m, c = statistics.median(by_way["matmul"]), statistics.median(by_way["conv"])
        rows[name] = {"matmul_ms": round(m, 1), "conv_ms": round(c, 1), "speedup": round(c / m, 2)}
        print(f"{name:14s} matmul {m:7.1f} ms   conv {c:7.1f} ms   {c / m:4.2f}x")
    print("largest difference between the two blurs:", same)
    write_results(RESULTS, {"rounds": args.rounds, "steps": args.steps, "rows": rows, "max_difference": same})
    return 0


def write_results(path: Path, figures: dict) -> None:
    """Write a benchmark's figures as JSON with the machine and its load average beside them."""
    import torch

    out = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                       "threads": torch.get_num_threads(), "torch": torch.__version__},
           "load_average": os.getloadavg()[0], **figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print("wrote", path)


if __name__ == "__main__":
    raise SystemExit(main())
