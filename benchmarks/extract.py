"""Benchmark of the face extraction stage (`facedouble extract`).

Frames: the first 60 frames of WolfgangLanger_Pexels.mp4 (640x360) upscaled to 1280x720. Each detector runs
the whole stage (detection on a copy scaled to 640 px, 68 landmarks, verification, alignment, identity, pose,
JPEG writing, the explicit-content screen) with the default worker count, and the figures are printed side by
side: end-to-end frames/s (worker start-up and model loading included), steady frames/s (from the first
finished frame to the last), CPU seconds per frame, faces found. The baseline, in the same run, is the
simple way: dlib HOG on the full 720p frame, 68 landmarks, Lanczos warp, write, in one process.

    .venv/bin/python benchmarks/extract.py                 # all detectors (dlib-cnn on 12 frames)
    .venv/bin/python benchmarks/extract.py --quick         # auto and the baseline only
    .venv/bin/python benchmarks/extract.py --long          # also auto on all 472 frames (end-to-end at length)
    .venv/bin/python benchmarks/extract.py --calibrate     # re-measure the detector box -> dlib box offsets
    .venv/bin/python benchmarks/extract.py --verify        # face-verifier scores on real and false faces
    .venv/bin/python benchmarks/extract.py --quality       # faces found per detector on harder material

Results go to benchmarks/results/extract.json. The machine is shared: the load average is recorded.
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
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from facedouble.config import ExtractConfig  # noqa: E402
from facedouble.progress import Reporter  # noqa: E402
from facedouble.workspace import Workspace  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def media_dir() -> Path:
    from media import media_dir as md

    return md()


def decode(video: Path, count: int, size: tuple[int, int] | None = None, every: int = 1) -> list[np.ndarray]:
    """RGB frames of a video (the first `count` taken every `every` frames), optionally resized."""
    import av
    import cv2

    out = []
    with av.open(str(video)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % every:
                continue
            img = f.to_ndarray(format="rgb24")
            if size is not None:
                img = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
            out.append(img)
            if len(out) >= count:
                break
    return out


def write_frames(folder: Path, frames: list[np.ndarray]) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames, 1):
        cv2.imwrite(str(folder / f"{i:06d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))


class TimingReporter(Reporter):
    """Records when each frame of the extraction task finishes."""

    def __init__(self) -> None:
        super().__init__()
        self.stamps: list[float] = []

    @contextmanager
    def task(self, description, total):
        def advance(n: int = 1) -> None:
            if description.startswith("Extracting faces"):
                self.stamps.extend([time.perf_counter()] * n)
        yield advance


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_stage(frames_dir: Path, side: str, cfg: ExtractConfig, work: Path) -> dict:
    from facedouble.extract import extract

    ws = Workspace(work / f"ws_{side}_{cfg.detector}_{cfg.identity_every}_{time.monotonic_ns()}").create()
    shutil.rmtree(ws.frames(side))
    shutil.copytree(frames_dir, ws.frames(side))
    rep = TimingReporter()
    c0, t0 = cpu_seconds(), time.perf_counter()
    try:
        s = extract(ws, side, cfg, reporter=rep)
        faces, frames_with, processed = s.faces_written, s.frames - len(s.no_face), s.processed
    except Exception as e:  # noqa: BLE001 - NoFaceError for a detector that finds nothing
        faces, frames_with, processed = 0, 0, len(list(frames_dir.iterdir()))
        print(f"  {cfg.detector}: {type(e).__name__}: {e}")
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    st = rep.stamps
    first_batch = sum(1 for t in st if t == st[0]) if st else 0
    steady = (len(st) - first_batch) / (st[-1] - st[0]) if len(st) - first_batch >= 16 and st[-1] > st[0] else None
    shutil.rmtree(ws.root, ignore_errors=True)
    return {"detector": cfg.detector, "side": side, "frames": processed, "faces": faces, "frames_with_face": frames_with,
            "identity_every": cfg.identity_every, "workers": cfg.workers or os.cpu_count(),
            "seconds": round(wall, 2), "fps_end_to_end": round(processed / wall, 2),
            "fps_steady": None if steady is None else round(steady, 2), "cpu_s_per_frame": round(cpu / max(processed, 1), 4)}


def baseline(frames: list[np.ndarray], out: Path) -> dict:
    """dlib HOG on the full frame + 68 landmarks + Lanczos warp + JPEG, one process, no verification."""
    import cv2
    import dlib

    from facedouble.faces import align, container
    from facedouble.faces.models import DLIB_68, dlib_model

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(dlib_model(DLIB_68)))
    out.mkdir(parents=True, exist_ok=True)
    c0, t0 = cpu_seconds(), time.perf_counter()
    faces = frames_with = 0
    for i, frame in enumerate(frames, 1):
        rects = det(frame, 0)
        frames_with += bool(rects)
        for j, r in enumerate(rects):
            lm = np.array([[p.x, p.y] for p in sp(frame, r).parts()], np.float32)
            m = align.face_matrix(lm, "whole-face", 512)
            face = cv2.warpAffine(frame, m, (512, 512), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
            container.atomic_write_bytes(out / f"{i:06d}_{j}.jpg", container.encode_image(face, ".jpg", 95))
            faces += 1
    wall = time.perf_counter() - t0
    return {"detector": "baseline: HOG on full frame", "side": "src", "frames": len(frames), "faces": faces,
            "frames_with_face": frames_with, "identity_every": None, "workers": 1, "seconds": round(wall, 2),
            "fps_end_to_end": round(len(frames) / wall, 2), "fps_steady": round(len(frames) / wall, 2),
            "cpu_s_per_frame": round((cpu_seconds() - c0) / len(frames), 4)}


def table(rows: list[dict], base_fps: float) -> str:
    head = f"{'detector':<44}{'side':<5}{'frames':>7}{'faces':>7}{'e2e fps':>9}{'steady':>8}{'cpu s/fr':>10}{'x base':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        name = r["detector"] + (f", identity every {r['identity_every']}" if r.get("identity_every") not in (None, 5) else "")
        name += f", {r['workers']} worker(s)" if r["workers"] != (os.cpu_count() or 1) else ""
        steady = "-" if r["fps_steady"] is None else f"{r['fps_steady']:.1f}"
        lines.append(f"{name[:43]:<44}{r['side']:<5}{r['frames']:>7}{r['faces']:>7}{r['fps_end_to_end']:>9.1f}{steady:>8}"
                     f"{r['cpu_s_per_frame']:>10.3f}{r['fps_end_to_end'] / base_fps:>8.2f}")
    return "\n".join(lines)


def main_speed(args) -> None:
    media = media_dir()
    frames = decode(media / "WolfgangLanger_Pexels.mp4", args.frames, (1280, 720))
    RESULTS.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="fd_bench_extract_") as tmp:
        work = Path(tmp)
        full = work / "frames720"
        write_frames(full, frames)
        few = work / "frames720_few"
        write_frames(few, frames[:12])
        rows = []
        base = baseline(frames, work / "baseline")
        print(f"baseline: {base['fps_end_to_end']:.1f} frames/s", flush=True)
        n = os.cpu_count() or 1
        plan = [("auto", "src", 5, n), ("auto", "dst", 5, n), ("auto", "src", 1, n), ("auto", "dst", 1, n),
                ("auto", "src", 5, 1), ("auto", "dst", 5, 1)]
        if not args.quick:
            plan += [("mediapipe", "src", 5, n), ("mt", "src", 5, n), ("dlib", "src", 5, n), ("dlib-cnn", "src", 5, n)]
        for det, side, every, workers in plan:
            src = few if det == "dlib-cnn" else full
            row = run_stage(src, side, ExtractConfig(detector=det, identity_every=every, workers=workers), work)
            rows.append(row)
            print(f"{det:>10} {side} identity_every={every} workers={workers}: {row['fps_end_to_end']:.1f} frames/s "
                  f"end to end, steady {row['fps_steady']}, {row['faces']} faces", flush=True)
        rows.append(base)
        if args.long:
            every_frame = decode(media / "WolfgangLanger_Pexels.mp4", 10**6, (1280, 720))
            long_dir = work / "frames720_all"
            write_frames(long_dir, every_frame)
            del every_frame
            for side in ("src", "dst"):
                row = run_stage(long_dir, side, ExtractConfig(workers=n), work)
                row["detector"] = f"auto, whole clip"
                rows.append(row)
                print(f"whole clip {side}: {row['fps_end_to_end']:.1f} frames/s end to end, steady {row['fps_steady']}",
                      flush=True)
    text = table(rows, base["fps_end_to_end"])
    print()
    print(f"Extraction of {args.frames} frames of WolfgangLanger_Pexels.mp4 upscaled to 1280x720 "
          f"({os.cpu_count()} cores; load average before {load0[0]:.1f}, after {os.getloadavg()[0]:.1f})")
    print(text)
    data = {"benchmark": "extract", "clip": "WolfgangLanger_Pexels.mp4 first frames upscaled to 1280x720",
            "frames": args.frames, "cores": os.cpu_count(), "platform": platform.platform(),
            "load_average_before": load0, "load_average_after": os.getloadavg(), "rows": rows,
            "target_fps_auto": 15.0, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = RESULTS / "extract.json"
    if out.is_file():   # keep the detector-quality section of an earlier --quality run
        try:
            old = json.loads(out.read_text())
            data.update({k: old[k] for k in ("quality",) if k in old})
        except ValueError:
            pass
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nwrote {out}")


def main_calibrate(args) -> None:
    """Median offsets and scale from each detector's box to dlib HOG's box on the same face (BOX_TO_HOG in
    faces/landmarks.py), and from the 68 landmarks to the HOG box (HOG_FROM_UNIT)."""
    import cv2
    import dlib

    from facedouble.faces import align
    from facedouble.faces.detect import iou, make_detector
    from facedouble.faces.models import DLIB_68, dlib_model

    media = media_dir()
    images = decode(media / "WolfgangLanger_Pexels.mp4", 118, every=4) + decode(media / "single_face.mp4", 36, every=2)
    images += [cv2.cvtColor(cv2.imread(str(media / n)), cv2.COLOR_BGR2RGB)
               for n in ("multi_face.jpg", "single_face.jpg", "Image_with_alpha.png")]
    sp = dlib.shape_predictor(str(dlib_model(DLIB_68)))
    dets = {n: make_detector(n) for n in ("dlib", "mediapipe", "mt", "dlib-cnn")}
    rows: dict[str, list] = {"mediapipe": [], "mt": [], "dlib-cnn": [], "landmarks": [], "landmark-box": []}
    for k, img in enumerate(images):
        found = {n: d.detect(img) for n, d in dets.items() if n != "dlib-cnn" or k % 6 == 0}
        for h in found["dlib"]:
            r = h.rect
            lm = np.array([[p.x, p.y] for p in sp(img, dlib.rectangle(int(r[0]), int(r[1]), int(r[2]) - 1,
                                                                      int(r[3]) - 1)).parts()], np.float32)
            for n in ("mediapipe", "mt", "dlib-cnn"):
                best = max(found.get(n, []), key=lambda d: iou(d.rect, r), default=None)
                if best is not None and iou(best.rect, r) > 0.3:
                    rows[n].append(_box_params(r, best.rect))
            rows["landmark-box"].append(_box_params(r, np.r_[lm.min(0), lm.max(0)]))
            m = align.face_matrix(lm, "full", 1)
            c = align.transform_points(np.array([[(r[0] + r[2]) / 2, (r[1] + r[3]) / 2]]), m)[0]
            rows["landmarks"].append([c[0], c[1], (r[2] - r[0]) * align.matrix_scale(m)])
    for n, v in rows.items():
        v = np.array(v)
        med, std = [round(float(x), 4) for x in np.median(v, 0)], [round(float(x), 4) for x in v.std(0)]
        print(f"{n:>13}: median {med}  std {std}  n={len(v)}")


def _box_params(target, box) -> list[float]:
    w, h = box[2] - box[0], box[3] - box[1]
    return [((target[0] + target[2]) / 2 - (box[0] + box[2]) / 2) / w,
            ((target[1] + target[3]) / 2 - (box[1] + box[3]) / 2) / h, (target[2] - target[0]) / np.sqrt(w * h)]


def main_verify(args) -> None:
    """Verifier scores (R-Net, BlazeFace) of every candidate face on real faces and on title frames."""
    from facedouble.faces.find import FaceFinder
    from facedouble.faces.mtcnn import FaceVerifier

    log: list = []

    class Logging(FaceVerifier):
        def __call__(self, image, landmarks):
            r, b = self.rnet_score(image, landmarks), self.blazeface_score(image, landmarks)
            log.append((r, b))
            return min(r / self.RNET_MIN, b / self.BLAZEFACE_MIN)

    media = media_dir()
    finder = FaceFinder("auto")
    finder.verifier = Logging()
    sets = {"no_face.mp4 (titles)": decode(media / "no_face.mp4", 200),
            "face_noface.mov titles": decode(media / "face_noface.mov", 200)[72:],
            "WolfgangLanger_Pexels.mp4": decode(media / "WolfgangLanger_Pexels.mp4", 200, every=3),
            "single_face.mp4": decode(media / "single_face.mp4", 30, every=3)}
    for name, frames in sets.items():
        log.clear()
        with_face = sum(bool(finder.find(f)) for f in frames)
        v = np.array(log) if log else np.zeros((0, 2))
        passed = int(((v[:, 0] >= FaceVerifier.RNET_MIN) & (v[:, 1] >= FaceVerifier.BLAZEFACE_MIN)).sum()) if len(v) else 0
        rp = v[v[:, 0] >= FaceVerifier.RNET_MIN] if len(v) else v
        both = f"{len(rp)} pass R-Net, their BlazeFace max {rp[:, 1].max():.3f} min {rp[:, 1].min():.3f}; " if len(rp) else ""
        print(f"{name:>28}: {len(frames)} frames, {with_face} with a face; {len(v)} candidates, {passed} pass; {both}"
              f"R-Net min {v[:, 0].min() if len(v) else float('nan'):.3f} max {v[:, 0].max() if len(v) else float('nan'):.3f}; "
              f"BlazeFace min {v[:, 1].min() if len(v) else float('nan'):.3f} max {v[:, 1].max() if len(v) else float('nan'):.3f}")


def main_quality(args) -> dict:
    """Faces found by each detector (with the verifier; auto also without) on harder material, at native size."""
    import cv2

    from facedouble.faces.find import FaceFinder

    media = media_dir()
    clip = decode(media / "WolfgangLanger_Pexels.mp4", 10**6, every=2)
    titles = decode(media / "no_face.mp4", 10**6) + decode(media / "face_noface.mov", 10**6)[72:]
    multi = cv2.cvtColor(cv2.imread(str(media / "multi_face.jpg")), cv2.COLOR_BGR2RGB)
    rows = []
    for det, verify in (("auto", True), ("auto", False), ("mediapipe", True), ("mt", True), ("dlib", True),
                        ("dlib-cnn", True)):
        finder = FaceFinder(det, verify=verify)
        step = 8 if det == "dlib-cnn" else 1
        t0 = time.perf_counter()
        found = sum(bool(finder.find(f)) for f in clip[::step])
        ms = 1000 * (time.perf_counter() - t0) / len(clip[::step])
        false = sum(bool(finder.find(f)) for f in titles[::step])
        row = {"detector": det, "verifier": verify, "clip_frames": len(clip[::step]), "clip_frames_with_face": found,
               "ms_per_clip_frame": round(ms, 1), "multi_face_faces": len(finder.find(multi)),
               "title_frames": len(titles[::step]), "title_frames_with_false_face": false}
        rows.append(row)
        print(f"{det:>10}{'' if verify else ' (no verifier)':<15} WolfgangLanger 640x360: {found}/{row['clip_frames']} "
              f"frames with a face, {ms:.0f} ms/frame; multi_face.jpg: {row['multi_face_faces']}/5; "
              f"title frames with a false face: {false}/{row['title_frames']}", flush=True)
    return {"quality": rows, "load_average": os.getloadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--quick", action="store_true", help="only auto and the baseline")
    ap.add_argument("--long", action="store_true", help="also auto on the whole clip (472 frames, ~0.8 GB of PNG)")
    ap.add_argument("--calibrate", action="store_true", help="measure detector box offsets instead")
    ap.add_argument("--verify", action="store_true", help="measure face-verifier scores instead")
    ap.add_argument("--quality", action="store_true", help="faces found per detector on harder material (adds "
                    "a 'quality' section to the results)")
    args = ap.parse_args()
    if args.calibrate:
        main_calibrate(args)
    elif args.verify:
        main_verify(args)
    elif args.quality:
        q = main_quality(args)
        out = RESULTS / "extract.json"
        data = json.loads(out.read_text()) if out.is_file() else {"benchmark": "extract"}
        data.update(q)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2) + "\n")
        print(f"\nwrote {out}")
    else:
        main_speed(args)


if __name__ == "__main__":
    main()
