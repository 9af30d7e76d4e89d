"""torch.compile on this CPU: whole liae192 training steps (bf16 autocast, channels-last, texture power 20: what
`facedouble train` does) of an eager model against the same model compiled with torch.compile, on the same real
batches in the same run. The compile time (the first two steps) is printed; then the two alternate in rounds
and the median round is reported with the ratio. Prints the figures and writes benchmarks/results/compile.json.

    .venv/bin/python benchmarks/compile.py [--mode default|max-autotune-no-cudagraphs] [--rounds 3] [--steps 8]

Session 14 (two cores with AMX, otherwise idle): compiled steps were slower in both modes (0.91x and 0.89x; the
compile itself 14-20 s), so the trainer runs the model eagerly.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from losses import ROOT, stepper, timed, train_batches, write_results  # noqa: E402  (also puts src/ and tests/ on the path)

RESULTS = ROOT / "benchmarks" / "results" / "compile.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", default="default", help="torch.compile mode (default, max-autotune-no-cudagraphs, ...)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8, help="training steps per round")
    args = ap.parse_args(argv)
    import torch

    from facedouble.train.trainer import TrainSession

    opts, batches = train_batches(args.steps)
    eager, compiled = TrainSession(opts, torch.device("cpu")), TrainSession(opts, torch.device("cpu"))
    t = time.perf_counter()
    compiled.net = torch.compile(compiled.model, mode=None if args.mode == "default" else args.mode)
    for i in range(2):
        compiled.step(batches[i], i)
    compile_s = time.perf_counter() - t
    print(f"compile and the first two steps: {compile_s:.1f} s")
    runs = {"eager": stepper(eager, batches), "compiled": stepper(compiled, batches)}
    times = {way: [] for way in runs}
    for r in range(args.rounds):
        for way, run in runs.items():
            times[way].append(timed(run, 1) / args.steps)
        print(f"round {r}: " + "  ".join(f"{way} {t[-1]:.0f} ms/step" for way, t in times.items()))
    e, c = statistics.median(times["eager"]), statistics.median(times["compiled"])
    print(f"median: eager {e:.0f} ms/step, compiled {c:.0f} ms/step, compiled speed {e / c:.2f}x")
    write_results(RESULTS, {"mode": args.mode, "rounds": args.rounds, "steps": args.steps,
                            "compile_s": round(compile_s, 1), "eager_ms": round(e, 1), "compiled_ms": round(c, 1),
                            "speed": round(e / c, 2)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
