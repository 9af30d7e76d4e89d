"""Live swap speed: frames per second and latency (source frame -> output frame, median and 95th percentile)
with each step's median time, at 640x480 and 1280x720, for the default CPU model (liae192), cpu192 (its shape
with a decoder per person), the faster lean96 (untrained weights: speed does not depend on them) and a 224-px
whole-face model.

The source is the sample clip scaled to each size and played at its own speed (30 fps) like a camera, so
frames are dropped when the pipeline is busy and latency is what a viewer sees; the output is an mp4 file
(H.264, C2PA signed at the end). The `read` step is the wait for the source's next frame (its pace), not work.

Each model and size runs once per variant of the pipeline's tuning (`live.pipeline.LiveTuning`), one after
the other, and each variant's fps and median latency are printed as a ratio to the first variant's in the
same run (the machine is shared: its load moves the absolute figures, much less the ratios). Variants:
`before` (the first pipeline: queues 2 deep, torch's process threads, the model as loaded, x264's own
threads), `now` (the default tuning), and single changes from `now` to see what each part brings:
`queues` (deeper queues as before), `t2` (the model on 2 threads), `plain` (the model as loaded, not
channels-last), `x264` (x264's own thread count).

    python benchmarks/live.py [--seconds 8] [--sizes 640x480,1280x720] [--models liae192,cpu192,lean96,wf224]
                              [--variants before,now]

Writes benchmarks/results/live.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

MODELS = {
    "liae192": dict(preset="liae192"),  # the default CPU model
    "cpu192": dict(preset="cpu192"),   # the default before liae192
    "lean96": dict(preset="lean96"),   # the fastest CPU model
    "wf224": dict(preset="sae", resolution=224, face_type="whole-face", ae_dims=256, e_dims=42, d_dims=21,
                  d_mask_dims=16),
}


def make_model(name: str):
    from facedouble.train.swapper import untrained_swapper

    opts = dict(MODELS[name])
    return untrained_swapper(opts.pop("preset"), seed=0, name=name, **opts)


def make_clip(src: Path, size: tuple[int, int], seconds: float, folder: Path) -> Path:
    """The sample clip scaled (and looped) to `size` at 30 fps, with no audio."""
    import av
    import cv2

    out_path = folder / f"clip_{size[0]}x{size[1]}.mp4"
    with av.open(str(src)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    out = av.open(str(out_path), "w")
    s = out.add_stream("libx264", rate=30)
    s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
    s.codec_context.options = {"crf": "18", "preset": "veryfast"}
    n = int(seconds * 30)
    for i in range(n):
        j = i % (2 * len(frames) - 2)
        img = frames[j if j < len(frames) else 2 * len(frames) - 2 - j]  # forth and back: no jump
        f = av.VideoFrame.from_ndarray(cv2.resize(img, size, interpolation=cv2.INTER_CUBIC), format="rgb24")
        f = f.reformat(format="yuv420p")
        f.pts = i
        for p in s.encode(f):
            out.mux(p)
    for p in s.encode(None):
        out.mux(p)
    out.close()
    return out_path


VARIANTS = {
    "before": lambda T: T.before(),
    "now": lambda T: T(),
    "queues": lambda T: T(fresh=False),
    "t2": lambda T: T(model_threads=2),
    "plain": lambda T: T(fast_model=False),
    "x264": lambda T: T(encoder_threads=0),
}


def run_one(clip: Path, model, out: Path, variant: str = "now") -> dict:
    from facedouble.config import LiveConfig
    from facedouble.live import LiveSession
    from facedouble.live.pipeline import LiveTuning

    session = LiveSession(LiveConfig(source=str(clip), out=str(out)), model=model, realtime=True,
                          tuning=VARIANTS[variant](LiveTuning))
    session.start()
    cpu0 = time.process_time()
    summary = session.wait()
    cpu = time.process_time() - cpu0   # every thread of this process, the encoder's and decoder's too
    steps = summary.step_ms
    sequential = sum(v for k, v in steps.items() if k != "read")  # read: the wait for the paced source
    return {
        "fps": round(summary.fps, 2), "frames_in": summary.frames_in, "frames_out": summary.frames_out,
        "dropped": summary.dropped, "faces": summary.faces,
        "latency_ms_median": round(summary.latency_ms_median, 1), "latency_ms_p95": round(summary.latency_ms_p95, 1),
        "step_ms": steps,
        "cpu_ms_per_frame_out": round(cpu * 1000.0 / summary.frames_out, 1) if summary.frames_out else None, "sequential_fps": round(1000.0 / sequential, 2) if sequential else None,
        "pipeline_gain": round(summary.fps / (1000.0 / sequential), 2) if sequential else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--sizes", default="640x480,1280x720")
    ap.add_argument("--models", default="liae192,cpu192,lean96,wf224")
    ap.add_argument("--variants", default="before,now", help=f"of {', '.join(VARIANTS)}; the first is the reference")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "live.json"))
    args = ap.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    os.environ.setdefault("FACEDOUBLE_CONFIG_DIR", tempfile.mkdtemp(prefix="fd-bench-cfg-"))
    from media import media_dir

    import torch

    from facedouble.device import cpu_has_bf16

    results = {"machine": {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0], "torch_threads": torch.get_num_threads(),
                           "bf16": bool(cpu_has_bf16())}, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size_text in args.sizes.split(","):
            w, h = (int(v) for v in size_text.split("x"))
            clip = make_clip(media_dir() / "single_face.mp4", (w, h), args.seconds, folder)
            for name in args.models.split(","):
                model = make_model(name)
                ref = None
                for variant in variants:
                    load = os.getloadavg()[0]
                    r = run_one(clip, model, folder / f"out_{name}_{w}x{h}_{variant}.mp4", variant)
                    r.update(size=f"{w}x{h}", model=name, model_resolution=model.resolution, variant=variant,
                             load_1min=round(load, 2))
                    ref = ref or r
                    r["fps_ratio"] = round(r["fps"] / ref["fps"], 2) if ref["fps"] else None
                    r["latency_ratio"] = round(r["latency_ms_median"] / ref["latency_ms_median"], 2) \
                        if ref["latency_ms_median"] else None
                    results["runs"].append(r)
                    print(f"{name:8s} {w}x{h} {variant:7s}: {r['fps']:5.1f} fps (x{r['fps_ratio']} of {variants[0]}), "
                          f"latency median {r['latency_ms_median']:.0f} ms (x{r['latency_ratio']}), "
                          f"p95 {r['latency_ms_p95']:.0f} ms, dropped {r['dropped']}/{r['frames_in']}, "
                          f"CPU {r['cpu_ms_per_frame_out']} ms per frame out; "
                          f"load {load:.1f}; steps ms {r['step_ms']}", flush=True)
    results["machine"]["load_1min_after"] = os.getloadavg()[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
