"""Benchmark of the merge stage at 720p, against bare decode + encode of the same frames in the same run.

    .venv/bin/python benchmarks/merge.py [--frames 72] [--superres] [--flicker]

What it measures (single_face.mp4 upscaled to 1280x720, PNG frames as `video extract` writes them, aligned
records from dlib landmarks):
  * baseline: read every frame and write it again (PNG, same settings and thread pool as the merge);
  * merge overlay and merge seamless + rct, with the model's inference included: the real default CPU network (cpu192) of
    facedouble.train (untrained weights: the speed is the same), the provenance mark, C2PA signing, the mask PNGs;
  * where the time goes: each step of one frame timed alone on one thread;
  * merge_frame latency (the UI's live preview) at 720p;
  * --superres: the face-detail network trained on the woman's faces (the sample pair's src): PSNR and
    sharpness on held-back faces against bicubic;
  * --flicker: flicker inside the face relative to the dst video's own, smoothing off and on, with a
    stand-in model whose colour and mask jitter from frame to frame.
Prints the figures and writes benchmarks/results/merge.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

import cv2  # noqa: E402

from facedouble.config import MergeConfig  # noqa: E402
from facedouble.imagefile import read_rgb  # noqa: E402
from facedouble.faces import align, container  # noqa: E402
from facedouble.merge import blend as B  # noqa: E402
from facedouble.merge import color as C  # noqa: E402
from facedouble.merge import merger, superres, temporal  # noqa: E402
from facedouble.merge import compose
from facedouble.merge import marking
from facedouble.workspace import Workspace  # noqa: E402
from media import media_dir  # noqa: E402
from support.faces import landmarks  # noqa: E402
from support.media import decode  # noqa: E402
from support.swappers import CastSwapper  # noqa: E402
from support.workspaces import write_dst_workspace  # noqa: E402


def default_model():
    """The real default CPU network (untrained weights) behind the merge's model interface."""
    from facedouble.choices import DEFAULT_MODEL
    from facedouble.train.swapper import untrained_swapper

    return untrained_swapper(DEFAULT_MODEL, seed=0)


def make_workspace(root: Path, n: int) -> Workspace:
    """n frames of single_face.mp4 at 1280x720 with aligned records (landmarks found at 640x360, x2)."""
    small = decode(media_dir() / "single_face.mp4", limit=n)
    ws = Workspace(root).create()
    for i, img in enumerate(small, start=1):
        big = cv2.resize(img, (1280, 720), interpolation=cv2.INTER_CUBIC)
        name = f"{i:06d}.png"
        cv2.imwrite(str(ws.frames("dst") / name), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        for k, (lm, box) in enumerate(landmarks(img)):
            lm = lm * 2
            m = align.face_matrix(lm, "whole-face", 256)
            rec = container.FaceRecord(face_type="whole-face", size=256, landmarks=align.transform_points(lm, m),
                                  source_landmarks=lm, matrix=m, source_filename=name,
                                  source_rect=tuple(int(v * 2) for v in box), source_size=(1280, 720), face_index=k)
            container.write_face(ws.aligned("dst") / f"{i:06d}_{k}.jpg", align.warp_to_face(big, m, 256), rec)
    return ws


def bare_decode_encode(ws: Workspace, out: Path) -> tuple[float, float]:
    """(frames per second, CPU seconds per frame) of reading every frame and writing it again, on the same
    2-thread pool as the merge."""
    out.mkdir(parents=True, exist_ok=True)
    files = ws.frame_files("dst")

    def one(p):
        img = read_rgb(p)
        container.atomic_write_bytes(out / p.name, container.encode_image(img, ".png", png_compression=1))

    t, c = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, files))
    return len(files) / (time.perf_counter() - t), (time.process_time() - c) / len(files)


def merge_fps(ws: Workspace, cfg: MergeConfig, swapper) -> tuple[float, float]:
    """(frames per second, CPU seconds per frame) of a whole merge."""
    c = time.process_time()
    s = merger.merge(ws, cfg, swapper=swapper, force=True)
    return s.written / s.seconds, (time.process_time() - c) / s.written


def breakdown(ws: Workspace, cfg: MergeConfig, swapper, n: int = 12) -> dict[str, float]:
    """CPU milliseconds per frame of each step (all threads of this process), each step run alone."""
    files = ws.frame_files("dst")[:n]
    recs = merger.frame_records(ws)
    run_id = marking.new_run_id()
    signer = marking.output_signer(run_id, cfg)
    state = compose.MergeState()
    acc: dict[str, float] = {}

    def tick(name, t0):  # process CPU time: what the step costs, whatever else runs on the machine
        acc[name] = acc.get(name, 0.0) + (time.process_time() - t0) * 1000 / len(files)
        return time.process_time()

    tmp = Path(tempfile.mkdtemp())
    res, ft = swapper.resolution, swapper.face_type
    for p in files:
        t = time.process_time()
        img = read_rgb(p)
        t = tick("decode PNG", t)
        lm = recs[p.name][0].source_landmarks
        crop = align.warp_to_face(img, align.face_matrix(lm, ft, res), res)
        t = tick("cut face", t)
        pr, mk = compose.run_model(swapper, [crop], 1)
        t = tick("model (batch 1)", t)
        layer = compose.prepare_face(img, lm, pr[0], mk[0], res, ft, cfg, state)
        t = tick("masks", t)
        face = C.color_transfer(cfg.color_transfer, layer.pred, layer.dst, layer.sel, layer.sel)
        t = tick("colour transfer", t)
        if cfg.mode in compose.SEAMLESS_MODES:
            compose._poisson(layer, face, cfg)
            t = tick("poisson (face box)", t)
        layer.face = face
        out = compose.compose_frame(img, [layer], cfg)
        t = tick("warp back + blend", t)
        marked = marking.mark_output(out.image, run_id)
        t = tick("provenance mark", t)
        png = container.encode_image(marked, ".png", png_compression=1)
        t = tick("encode PNG", t)
        png = marking.sign_output(png, p.name, run_id, signer)
        t = tick("C2PA sign (frame PNG)", t)
        container.atomic_write_bytes(tmp / p.name, png)
        t = tick("write PNG", t)
        mask_png = container.encode_image(out.mask, ".png", png_compression=1)
        t = tick("encode mask", t)
        container.atomic_write_bytes(tmp / ("m" + p.name), marking.sign_output(mask_png, p.name, run_id, signer))
        t = tick("C2PA sign + write (mask PNG)", t)
    shutil.rmtree(tmp, ignore_errors=True)
    # full-frame Poisson, for comparison with the face box
    img = read_rgb(files[0])
    big_mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillConvexPoly(big_mask, cv2.convexHull(np.round(recs[files[0].name][0].source_landmarks).astype(np.int32)), 255)
    t = time.perf_counter()
    bb = cv2.boundingRect(big_mask)
    B.poisson_solve(img, img, np.ones(img.shape[:2], np.uint8) * 255)
    acc["(poisson on the whole frame instead)"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    B.seamless(img, img, big_mask)
    acc["(poisson on the face's box in the frame)"] = (time.perf_counter() - t) * 1000
    acc["(face box px)"] = float(bb[2] * bb[3])
    return {k: round(v, 2) for k, v in acc.items()}


def merge_frame_latency(ws: Workspace, swapper, cfg: MergeConfig, repeat: int = 5) -> dict[str, float]:
    p = ws.frame_files("dst")[3]
    recs = merger.frame_records(ws)[p.name]
    img = read_rgb(p)
    compose.merge_frame(img, recs, swapper, cfg)  # warm up
    cold, warm = [], []
    state = compose.MergeState()
    for _ in range(repeat):
        t = time.perf_counter()
        compose.merge_frame(img, recs, swapper, cfg)
        cold.append(time.perf_counter() - t)
    compose.merge_frame(img, recs, swapper, cfg, state)
    for _ in range(repeat):
        t = time.perf_counter()
        compose.merge_frame(img, recs, swapper, cfg, state)  # options changed in the UI: model output cached
        warm.append(time.perf_counter() - t)
    return {"ms_median": round(1000 * float(np.median(cold)), 1),
            "ms_median_model_cached": round(1000 * float(np.median(warm)), 1)}


def superres_figures(steps: int) -> dict:
    frames = decode(media_dir() / "WolfgangLanger_Pexels.mp4")
    faces = []
    for img in frames[::6]:
        for lm, _ in landmarks(img)[:1]:
            faces.append(align.warp_to_face(img, align.face_matrix(lm, "full", 192), 192))
    t = time.perf_counter()
    detail = superres.train_face_detail(faces, 192, steps=steps, holdout=0.15)
    m = dict(detail.metrics)
    m["train_seconds"] = round(time.perf_counter() - t, 1)
    m["faces"] = len(faces)
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in m.items()}


class FixedFaceSwapper:
    """Stand-in for a model that always draws the same src face (the woman's), pinned to the landmarks:
    any jitter of the dst landmarks shows as a shaking face, as with a real model."""

    resolution, face_type, learn_mask = 128, "whole-face", False

    def __init__(self):
        img = decode(media_dir() / "WolfgangLanger_Pexels.mp4", limit=250)[240]
        lm, _ = landmarks(img)[0]
        self.face = align.warp_to_face(img, align.face_matrix(lm, "whole-face", 128), 128).astype(np.float32) / 255

    def swap_numpy(self, faces):
        return [self.face.copy() for _ in faces], [np.ones((128, 128), np.float32) for _ in faces]


def flicker_figures(root: Path) -> dict:
    from facedouble.faces import regions

    ws = Workspace(root / "flicker")
    frames = decode(media_dir() / "single_face.mp4")
    write_dst_workspace(ws, frames)
    recs = merger.frame_records(ws)
    files = ws.frame_files("dst")
    dst = [read_rgb(p) for p in files]
    hulls = [regions.hull_mask(recs[p.name][0].source_landmarks, dst[0].shape[:2]) if p.name in recs
             else np.zeros(dst[0].shape[:2], np.float32) for p in files]
    from facedouble.provenance import mark_frame

    rid = marking.new_run_id()
    out = {"note": "merge output before the provenance mark (the mark's own effect is the last figure)",
           "provenance mark alone on the dst video": round(temporal.flicker([mark_frame(f, rid) for f in dst], hulls,
                                                                            reference=dst), 3)}
    real_mark = marking.mark_output
    marking.mark_output = lambda image, run_id: image  # measure the merge, not the watermark
    for label, kw in [
        ("seamless, no colour transfer", dict(mode="seamless", color_transfer="none")),
        ("seamless + rct", dict(mode="seamless", color_transfer="rct")),
        ("overlay + rct", dict(mode="overlay", color_transfer="rct")),
    ]:
        row = {}
        for name, extra in [("off", dict(smooth_frames=0)), ("smooth 2", dict(smooth_frames=2)),
                            ("smooth 2 + suppress jitter", dict(smooth_frames=2, suppress_seamless_jitter=True))]:
            if "suppress" in name and kw["mode"] != "seamless":
                continue
            merger.merge(ws, MergeConfig(mask="learned", **kw, **extra), swapper=CastSwapper(128, jitter=0.04, seed=7),
                         force=True)
            merged = [read_rgb(ws.merged / p.name) for p in files]
            row[name] = round(temporal.flicker(merged, hulls, reference=dst), 3)
        out[label] = row
    row = {}
    for name, k in (("off", 0), ("smooth 2", 2)):
        merger.merge(ws, MergeConfig(mode="overlay", mask="dst", color_transfer="rct", smooth_frames=k),
                     swapper=FixedFaceSwapper(), force=True)
        merged = [read_rgb(ws.merged / p.name) for p in files]
        row[name] = round(temporal.flicker(merged, hulls, reference=dst), 3)
    out["fixed src face (landmark jitter), overlay + rct, dst mask"] = row
    marking.mark_output = real_mark
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=72)
    ap.add_argument("--superres", action="store_true", help="also train and measure the face-detail network")
    ap.add_argument("--superres-steps", type=int, default=1200)
    ap.add_argument("--flicker", action="store_true", help="also measure flicker with and without smoothing")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed figures")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fd-merge-bench-"))
    try:
        ws = make_workspace(tmp / "ws", args.frames)
        sw = default_model()
        results: dict = {"frames": len(ws.frame_files("dst")), "size": "1280x720", "model": f"{sw.name} (untrained weights)",
                         "cpu_count": os.cpu_count(), "load_average_at_start": list(os.getloadavg()),
                         "platform": platform.platform()}
        if not args.no_speed:
            speed(ws, sw, tmp, results)
        if args.flicker:
            results["flicker_ratio_to_dst"] = flicker_figures(tmp)
        if args.superres:
            results["superres"] = superres_figures(args.superres_steps)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=2))
    out = ROOT / "benchmarks" / "results" / "merge.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:  # parts not measured in this run (--no-speed, no --flicker, ...) keep their last figures
        previous = json.loads(out.read_text()) if out.exists() else {}
    except ValueError:
        previous = {}
    out.write_text(json.dumps({**previous, **results}, indent=2) + "\n")
    print(f"written {out}")


def speed(ws: Workspace, sw, tmp: Path, results: dict, repeat: int = 2) -> None:
    """Frames per second (merge vs decode + encode; best of `repeat`, interleaved, because the machine may be
    shared), CPU time per frame (hardly affected by other processes: with both cores kept busy, 2 / CPU
    seconds per frame is the rate on 2 idle cores), per-step times, merge_frame latency."""
    runs: dict[str, list[tuple[float, float]]] = {"decode+encode": [], "overlay": [], "seamless+rct": []}
    for r in range(repeat):
        runs["decode+encode"].append(bare_decode_encode(ws, tmp / f"copy{r}"))
        runs["overlay"].append(merge_fps(ws, MergeConfig(mode="overlay", mask="dst"), sw))
        runs["seamless+rct"].append(merge_fps(ws, MergeConfig(mode="seamless", mask="dst", color_transfer="rct"), sw))
    fps = {k: max(f for f, _ in v) for k, v in runs.items()}
    cpu = {k: min(c for _, c in v) for k, v in runs.items()}
    results["fps"] = {k: round(v, 2) for k, v in fps.items()}
    results["ratio_to_decode_encode"] = {k: round(fps[k] / fps["decode+encode"], 3) for k in ("overlay", "seamless+rct")}
    results["cpu_ms_per_frame"] = {k: round(1000 * v, 1) for k, v in cpu.items()}
    results["fps_on_2_idle_cores_from_cpu_time"] = {k: round(2 / v, 1) for k, v in cpu.items()}
    results["cpu_ratio_to_decode_encode"] = {k: round(cpu["decode+encode"] / cpu[k], 3) for k in ("overlay", "seamless+rct")}
    results["ms_per_frame_breakdown_seamless_rct"] = breakdown(
        ws, MergeConfig(mode="seamless", mask="dst", color_transfer="rct"), sw)
    results["merge_frame_720p"] = merge_frame_latency(ws, sw, MergeConfig(mode="seamless", mask="dst", color_transfer="rct"))
    results["load_average_at_end"] = list(os.getloadavg())

if __name__ == "__main__":
    main()
