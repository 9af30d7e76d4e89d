"""The fault-injection suite's summary: every fault tried, and whether the stage survived it with nothing lost.

Runs the reliability tests, slow ones included (pytest in-process, `-m ""`):
  * tests/reliability/test_reliability_kills.py    SIGKILL of each long stage at random points, several seeds;
  * tests/reliability/test_reliability_inputs.py   bad inputs (truncated/corrupt videos, odd images, full disk, ...);
  * tests/reliability/test_reliability_security.py no unpickling, fuzzed metadata readers, UI request checks;
  * the training-stability tests (NaN, exploding loss, out of memory) of tests/train/test_train_trainer.py;
  * tests/test_safety_paths.py         explicit content on every path that brings frames or faces in
                                       (extract, --rects, the UI's manual editor, import-dfl, live), refused.
A test passes only when the stage came through: one clear message and exit code, no half-written file, the
previous checkpoint intact, the re-run's output equal to an uninterrupted run's (see each test's docstring).

Prints a table by kind of fault and writes benchmarks/results/faults.json.

    .venv/bin/python benchmarks/faults.py [--quick]     (--quick: the default-run sample only, as CI runs it)
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "kill": "tests/reliability/test_reliability_kills.py",
    "bad input": "tests/reliability/test_reliability_inputs.py",
    "security": "tests/reliability/test_reliability_security.py",
    "training stability": "tests/train/test_train_trainer.py",
    "explicit content": "tests/test_safety_paths.py",
}
STABILITY = "bad_loss or out_of_memory or kill_during_save or sigterm"


class Collector:
    """A pytest plugin that keeps each test's outcome (the call phase, or the setup error)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.seconds: dict[str, float] = collections.defaultdict(float)

    def pytest_runtest_logreport(self, report) -> None:  # noqa: ANN001 - pytest's hook signature
        self.seconds[report.nodeid] += report.duration
        if report.when == "call" or report.outcome != "passed":
            if report.nodeid not in self.outcomes or report.outcome != "passed":
                self.outcomes[report.nodeid] = "skipped" if report.skipped else report.outcome


def kind_of(nodeid: str) -> str:
    path = nodeid.split("::")[0]
    return next((k for k, f in FILES.items() if path.endswith(Path(f).name)), "other")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the default-run sample (what CI runs)")
    args = ap.parse_args()

    import pytest

    collector = Collector()
    marks = "not slow and not gpu" if args.quick else "not gpu"
    files = [str(ROOT / f) for f in FILES.values()]
    start = time.monotonic()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "-m", marks, "-k",
                        f"not test_train_trainer or {STABILITY}", *files], plugins=[collector])
    seconds = time.monotonic() - start

    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for nodeid, outcome in collector.outcomes.items():
        table[kind_of(nodeid)][outcome] += 1
    print()
    print(f"{'fault':<20} {'tried':>6} {'survived':>9} {'failed':>7} {'skipped':>8}")
    rows = {}
    for kind in FILES:
        c = table.get(kind, collections.Counter())
        tried = c["passed"] + c["failed"] + c["error"]
        rows[kind] = {"tried": tried, "survived": c["passed"], "failed": c["failed"] + c["error"],
                      "skipped": c["skipped"]}
        print(f"{kind:<20} {tried:>6} {c['passed']:>9} {c['failed'] + c['error']:>7} {c['skipped']:>8}")
    total = {k: sum(r[k] for r in rows.values()) for k in ("tried", "survived", "failed", "skipped")}
    print(f"{'all':<20} {total['tried']:>6} {total['survived']:>9} {total['failed']:>7} {total['skipped']:>8}")
    print(f"{seconds:.0f} s; {'sample of the default run' if args.quick else 'slow tests included'}")
    failed = sorted(n for n, o in collector.outcomes.items() if o in ("failed", "error"))
    for n in failed:
        print(f"  FAILED {n}")
    out = ROOT / "benchmarks" / "results" / "faults.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                               "quick": args.quick, "seconds": round(seconds, 1), "by_kind": rows, "total": total,
                               "failed": failed, "outcomes": collector.outcomes}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
