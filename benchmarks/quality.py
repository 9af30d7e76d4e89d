"""Swap quality per CPU-minute (issue: swap quality): train from scratch, merge and build with the defaults,
score with the quality report, print each figure beside its target.

For each preset: a fresh workspace gets the pair's frames and faces (extracted once per pair and copied, so
every preset learns from the same faces), then `facedouble train` runs as a child process and is stopped with
SIGTERM after --minutes, as a user's scheduler would stop it (the trainer saves on SIGTERM). The merge and
the video build use the defaults (the saved merge config of `run`), then `facedouble report` scores the
result. Prints one table per preset and writes benchmarks/results/quality.json (and quality_<tag>.json).

    .venv/bin/python benchmarks/quality.py --minutes 10 [--preset quick96 ...] [--src VIDEO --dst VIDEO]
        [--src-fps 8] [--device cpu|cuda] [--from MODEL_DIR] [--tag NAME] [--keep] [--iterations N]
        [--train-only | --no-train [--weights average|trained]]
        [--train OPTION=VALUE ...] [--merge OPTION=VALUE ...]

On a GPU machine that lacks the face models (dlib, MediaPipe): run once where they are (any run leaves the
faces cache `<workdir>/faces-<pair>`), copy that cache over, run `--train-only --device cuda` there, copy the
workspaces back and score them with `--no-train --keep` (docs/quality.md: the H200 run).

Targets (issue 16): after 60 minutes identity nearer src >= 0.95 with mean distance to src <= 0.50, face
detail >= 0.70 of dst's, landmark error <= 0.05, flicker <= 1.10, background >= 45 dB; after 10 minutes
identity >= 0.90 and detail >= 0.40. The load average is printed beside the figures: a second busy process on
two cores halves training speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

RESULTS = ROOT / "benchmarks" / "results"


def targets(minutes: float) -> dict[str, tuple[str, float]]:
    """Figure -> (comparison, target) for a run of `minutes` (the issue's two checkpoints)."""
    if minutes >= 60:
        return {"nearer_src": (">=", 0.95), "mean_src": ("<=", 0.50), "detail": (">=", 0.70),
                "landmark_error": ("<=", 0.05), "flicker": ("<=", 1.10), "background_db": (">=", 45.0)}
    return {"nearer_src": (">=", 0.90), "detail": (">=", 0.40), "landmark_error": ("<=", 0.05),
            "flicker": ("<=", 1.10), "background_db": (">=", 45.0)}


def figures(summary: dict) -> dict[str, float | None]:
    """The report summary's judged figures, by the names `targets` uses."""
    background = next((c["value"] for c in summary.get("checks", []) if c["name"].startswith("background")), None)
    return {
        "nearer_src": summary["identity"].get("nearer_src"),
        "mean_src": summary["identity"].get("mean_src"),
        "mean_dst": summary["identity"].get("mean_dst"),
        "detail": summary["detail"].get("ratio_to_dst_median"),
        "landmark_error": summary["expression_pose"].get("landmark_error_mean"),
        "eyes_open": summary["expression_pose"].get("eyes_open_ratio_median"),
        "flicker": summary["temporal"].get("flicker_ratio"),
        "flicker_unmarked_dst": summary["temporal"].get("flicker_ratio_unmarked_dst"),
        "background_db": background,
    }


def passes(value: float | None, op: str, target: float) -> bool:
    if value is None:
        return False
    return value >= target if op == ">=" else value <= target


def prepare_faces(cache: Path, src: Path, dst: Path, src_fps: float | None, hands: bool = True) -> Path:
    """A workspace holding the pair's frames and aligned faces (made once per pair, then copied). `hands`: track
    the hands on a cache made before extraction did (False where the hand model is missing: --train-only)."""
    from facedouble.config import ExtractConfig, VideoExtractConfig
    from facedouble.extract import extract
    from facedouble.progress import Reporter
    from facedouble.video.frames import extract_frames
    from facedouble.workspace import Workspace

    done = cache / ".faces-done"
    if done.is_file():
        if not hands:
            return cache
        from facedouble.extract.hands import track_hands

        track_hands(Workspace(cache), "src")  # a cache made before extraction tracked hands (checked faces skipped)
        return cache
    ws = Workspace(cache).create()
    shutil.copyfile(src, ws.root / f"data_src{src.suffix}")
    shutil.copyfile(dst, ws.root / f"data_dst{dst.suffix}")
    rep = Reporter()
    extract_frames(ws, "src", VideoExtractConfig(fps=src_fps), reporter=rep)
    extract_frames(ws, "dst", VideoExtractConfig(), reporter=rep)
    for side in ("src", "dst"):
        extract(ws, side, ExtractConfig(), reporter=rep)
    done.write_text("ok\n")
    return cache


def train_for(ws: Path, preset: str, minutes: float, device: str, reuse: Path | None,
              iterations: int | None = None, options: dict | None = None) -> dict:
    """Run `facedouble train` in a child process and stop it with SIGTERM after `minutes` (or when it reaches
    `iterations`, when given: runs on a loaded machine compare by iterations, not by minutes). `options`:
    training options other than the preset's (TrainConfig names), given to the trainer as a --config file."""
    cmd = [sys.executable, "-m", "facedouble", "train", "-w", str(ws), "-m", preset]
    if options:
        config = ws / "train_options.json"
        config.write_text(json.dumps(options))
        cmd += ["--config", str(config)]
    if iterations:
        cmd += ["--target-iteration", str(iterations)]
    if device != "auto":
        cmd += ["--device", device]
    if reuse is not None:
        cmd += ["--from", str(reuse)]
    log = ws / "train.log"
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            proc.wait(timeout=minutes * 60)
        except subprocess.TimeoutExpired:
            pass
        finally:  # the minutes are up, or this script stopped (Ctrl-C, SIGTERM): stop the trainer (it saves)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=300)
    elapsed = time.monotonic() - started
    if proc.returncode not in (0, 130, -signal.SIGTERM, 128 + signal.SIGTERM):  # 130: the CLI's "stopped"
        raise SystemExit(f"training failed (exit {proc.returncode}); see {log}")
    trained = trained_state(ws, preset)
    # samples_per_s counts the child's start-up (loading faces, building the model, a GPU's start) too
    samples = trained["iterations"] * trained.pop("batch_size")
    return {"seconds": round(elapsed, 1), **trained, "exit_code": proc.returncode,
            "samples_per_s": round(samples / max(elapsed, 1e-9), 2) if samples else None}


def trained_state(ws: Path, preset: str) -> dict:
    """The kept model's iterations, batch size and samples per second in the training loop, from its state
    file (a sample is one src and one dst face, as the trainer's status line counts them)."""
    state_file = ws / "model" / f"{preset}_state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    iters = int(state.get("iteration", 0))
    batch = int(state.get("batch_size", 0) or 0)
    looped = float(state.get("seconds_trained", 0.0) or 0.0)
    return {"iterations": iters, "batch_size": batch,
            "loop_samples_per_s": round(iters * batch / looped, 2) if batch and looped > 0 else None}


def merge_build_report(ws_path: Path, preset: str, device: str, changes: dict | None = None) -> tuple[dict, dict]:
    """Merge and build with the defaults (as `run` does), then the quality report."""
    import dataclasses

    from facedouble.config import MergeConfig, ReportConfig, VideoBuildConfig
    from facedouble.merge.merger import merge
    from facedouble.progress import Reporter
    from facedouble.report import make_report
    from facedouble.video.build import build_video
    from facedouble.workspace import Workspace

    ws = Workspace(ws_path)
    rep = Reporter()
    t0 = time.monotonic()
    cfg = dataclasses.replace(MergeConfig(device=device), model_name=preset, **(changes or {}))
    merged = merge(ws, cfg, reporter=rep, force=True)
    t1 = time.monotonic()
    build_video(ws, VideoBuildConfig(), reporter=rep)
    t2 = time.monotonic()
    out = make_report(ws, ReportConfig(), reporter=rep)
    timing = {"merge_s": round(t1 - t0, 1), "merge_fps": round(merged.frames / max(t1 - t0, 1e-9), 1),
              "build_s": round(t2 - t1, 1), "report_s": round(time.monotonic() - t2, 1)}
    return out.summary, timing


def strip(ws_path: Path, out: Path, frame: int = 24, side: int = 256) -> Path | None:
    """A small PNG for the docs: dst frame `frame` around the face, the merged frame there, and a src face;
    marked as AI-generated like every image the merger writes."""
    import cv2
    import numpy as np

    from facedouble.imagefile import read_rgb as read_image
    from facedouble.merge.merger import find_frame, frame_records
    from facedouble.merge.marking import write_marked
    from facedouble.workspace import Workspace

    ws = Workspace(ws_path)
    try:
        dst_path = find_frame(ws, frame)
    except Exception:  # noqa: BLE001 - a clip shorter than `frame`: its middle frame
        files = ws.frame_files("dst")
        dst_path = files[len(files) // 2]
    merged = next(iter(sorted(ws.merged.glob(dst_path.stem + ".*"))), None)
    recs = frame_records(ws).get(dst_path.name)
    src_faces = ws.face_files("src")
    if merged is None or not recs or not src_faces:
        return None
    lm = np.asarray(recs[0].source_landmarks, np.float32)
    cx, cy = lm.mean(0)
    half = int(max(np.ptp(lm[:, 0]), np.ptp(lm[:, 1])) * 0.8)
    tiles = []
    for img in (read_image(dst_path), read_image(merged)):
        h, w = img.shape[:2]
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        crop = img[y0:min(h, y0 + 2 * half), x0:min(w, x0 + 2 * half)]
        tiles.append(cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA))
    tiles.append(cv2.resize(read_image(src_faces[len(src_faces) // 3]), (side, side), interpolation=cv2.INTER_AREA))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_marked(out, np.hstack(tiles), "quality-benchmark")
    return out


def without_average(ws: Path, name: str) -> Path:
    """A copy of the kept workspace `ws` (`<ws>-trained`) whose checkpoint lacks the averaged weights, so the merge
    uses the trained ones: the two weights of one run scored side by side (--weights trained)."""
    from facedouble.train import checkpoint as ckpt

    out = ws.with_name(ws.name + "-trained")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(ws, out, ignore=shutil.ignore_patterns("merged", "merged_mask", "report", "result.*", "backups"))
    weights = out / "model" / f"{name}.safetensors"
    tensors, meta = ckpt.read_checkpoint(weights)
    ckpt.save_checkpoint(weights, {k: v for k, v in tensors.items() if not k.startswith(ckpt.AVERAGE_PREFIX)}, meta)
    return out


def saved_train_changes(ws: Path, name: str) -> dict:
    """The training options of the kept model `name` in `ws` that differ from what a new model of that preset
    would take (the preset and the shared training defaults; the seed and run settings aside): a --no-train
    row's record of how its model was trained."""
    from facedouble.train.checkpoint import ModelFiles, load_options
    from facedouble.train.options import RUN_SETTINGS, new_model_values

    saved = load_options(ModelFiles(ws / "model", name))
    if saved is None:
        return {}
    new = new_model_values(name)
    return {k: v for k, v in saved.to_dict().items()
            if k in new and k not in RUN_SETTINGS and k != "seed" and v is not None and v != new[k]}


def json_or_text(value: str):
    """A --train/--merge value: JSON (10, true, "rct"), else the text itself (super_resolution=on)."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def main() -> int:
    from media import media_dir

    media = media_dir()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--iterations", type=int, default=None,
                    help="train to this iteration (the minutes still cap it): compares runs by iterations")
    ap.add_argument("--preset", nargs="+", default=None, help="presets to compare (default: the default preset of run)")
    ap.add_argument("--src", type=Path, default=media / "WolfgangLanger_Pexels.mp4")
    ap.add_argument("--dst", type=Path, default=media / "single_face.mp4")
    ap.add_argument("--src-fps", type=float, default=8.0, help="src frames per second taken (as the demo does)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--from", dest="reuse", type=Path, default=None, help="start from this pretrained model folder")
    ap.add_argument("--workdir", type=Path, default=RESULTS / "quality")
    ap.add_argument("--tag", default=None, help="name of this run in the JSON (default: minutes and presets)")
    ap.add_argument("--keep", action="store_true", help="keep the workspaces (default: only their reports)")
    ap.add_argument("--no-train", action="store_true", help="merge and score the kept workspaces' models again")
    ap.add_argument("--weights", choices=("average", "trained"), default="average",
                    help="with --no-train: score the averaged weights where the model keeps them (--ema-decay; what "
                         "the merge uses), or the trained ones (scored in a copy, <workspace>-trained)")
    ap.add_argument("--train-only", action="store_true",
                    help="train and keep the workspaces, no merge or report (a GPU machine without the face models; "
                         "score them afterwards with --no-train where they are)")
    ap.add_argument("--train", nargs="*", default=[], metavar="OPTION=VALUE",
                    help="training options other than the preset's, e.g. detail_power=10 (JSON values, or plain text)")
    ap.add_argument("--merge", nargs="*", default=[], metavar="OPTION=VALUE",
                    help="merge options other than the defaults, e.g. super_resolution=off (JSON values, or plain text)")
    args = ap.parse_args()

    from facedouble.choices import DEFAULT_MODEL

    presets = args.preset or [DEFAULT_MODEL]
    pair = f"{args.src.stem}--{args.dst.stem}"
    faces = prepare_faces(args.workdir / f"faces-{pair}", args.src, args.dst, args.src_fps, hands=not args.train_only)
    tag = args.tag or f"{pair}-{args.minutes:g}min"
    rows = []
    train_changes = {k: json_or_text(v) for k, v in (item.split("=", 1) for item in args.train)}
    for name in presets:
        ws = args.workdir / f"{tag}-{name}"
        load_before = load_average()
        if args.no_train:
            if args.weights == "trained":
                ws = without_average(ws, name)
            trained = trained_state(ws, name)
            trained = {"seconds": None, "iterations": trained["iterations"], "samples_per_s": None,
                       "loop_samples_per_s": trained["loop_samples_per_s"]}
            row_changes = saved_train_changes(ws, name)
        else:
            if ws.exists():
                shutil.rmtree(ws)
            shutil.copytree(faces, ws, ignore=shutil.ignore_patterns("model", "merged", "merged_mask", "report",
                                                                      "result.*"))
            trained = train_for(ws, name, args.minutes, args.device, args.reuse, args.iterations, train_changes)
            row_changes = train_changes
        load_after = load_average()
        if args.train_only:
            rows.append({"preset": name, "minutes": args.minutes, "pair": pair, "train_changes": row_changes,
                         "train": trained, "load_average": [load_before, load_after], "workspace": str(ws)})
            print(f"\n{name}: {args.minutes:g} min, {trained['iterations']} iterations "
                  f"({trained['loop_samples_per_s']} samples/s training, {trained['samples_per_s']} with start-up); "
                  f"kept in {ws}")
            continue
        changes = {k: json_or_text(v) for k, v in (item.split("=", 1) for item in args.merge)}
        summary, timing = merge_build_report(ws, name, args.device, changes)
        figs = figures(summary)
        checks = {k: {"value": figs[k], "op": op, "target": t, "pass": passes(figs[k], op, t)}
                  for k, (op, t) in targets(args.minutes).items()}
        row = {"preset": name, "minutes": args.minutes, "iterations_target": args.iterations, "weights": args.weights,
               "from": None if args.reuse is None else str(args.reuse), "pair": pair, "train_changes": row_changes,
               "merge_changes": changes,
               "train": trained,
               "timing": timing,
               "figures": figs, "checks": checks, "load_average": [load_before, load_after],
               "report": str(ws / "report" / "report.html")}
        picture = strip(ws, RESULTS / f"quality_{tag}-{name}.png")
        row["strip"] = None if picture is None else str(picture)
        rows.append(row)
        print(f"\n{name}: {args.minutes:g} min, {trained['iterations']} iterations "
              f"({trained['samples_per_s']} samples/s), load {load_before} -> {load_after}")
        for k, c in checks.items():
            v = "n/a" if c["value"] is None else f"{c['value']:.3f}"
            print(f"  {k:15s} {v:>8s}  target {c['op']} {c['target']:<5g} {'PASS' if c['pass'] else 'miss'}")
        eyes = "n/a" if figs["eyes_open"] is None else f"{figs['eyes_open']:.2f}"
        print(f"  (eye opening / dst's {eyes}; mean distance to dst {figs['mean_dst']}; "
              f"merge {timing['merge_fps']} frames/s)")
        if not args.keep:
            for sub in ("data_src", "data_dst"):
                shutil.rmtree(ws / sub, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()}, "tag": tag, "rows": rows}
    for path in (RESULTS / "quality.json", RESULTS / f"quality_{tag}.json"):
        path.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {RESULTS / f'quality_{tag}.json'}")
    return 0


if __name__ == "__main__":
    # a scheduler's SIGTERM ends this script as Ctrl-C does, so a training child is stopped with it (train_for)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    raise SystemExit(main())
