"""Video stages against bare PyAV, on a 720p clip made from the sample media.

Makes a 1280x720 H.264 clip (the first N frames of WolfgangLanger_Pexels.mp4, upscaled, with its audio),
then times in the same run:
  * frame extraction (png, jpg) vs bare PyAV decode (frames decoded, nothing converted or written), and
    vs the obvious script (decode, to_ndarray, cv2.imwrite with default settings, one frame at a time);
  * build (mp4) vs bare PyAV encode of the same frames held in memory with the same encoder settings, and
    vs the obvious script (cv2.imread each PNG, from_ndarray, encode).
and against the sum of its parts, each done bare in memory with the same libraries and threads:
  * extract vs bare decode + bare image encoding (the decoded frames converted to BGR and encoded to PNG or
    JPEG bytes on the same thread pool, nothing written);
  * build vs bare PNG decoding and conversion to YUV (the frame files' bytes, read beforehand, on the same
    pool) + bare encode of those very frames.
A ratio >= 0.8 against the sum of parts means the stage adds at most a quarter to the work it cannot avoid
(files, atomic renames, progress, resume checks, audio, provenance); above 1 it overlaps the parts.
Each timing is the best of --repeat runs. Prints the figures and writes benchmarks/results/video.json.

    .venv/bin/python benchmarks/video.py [--frames 100] [--repeat 2]
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
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

from media import media_dir  # noqa: E402

from facedouble.allocator import tune  # noqa: E402
from facedouble.config import VideoBuildConfig, VideoExtractConfig  # noqa: E402
from facedouble.video import build_video, extract_frames  # noqa: E402
from facedouble.video.audio import AudioEncoder  # noqa: E402
from facedouble.video.build import FORMATS  # noqa: E402
from facedouble.video.images import ImagePool, encode_image  # noqa: E402
from facedouble.video.pixels import frame_to_image, image_to_frame  # noqa: E402
from facedouble.workspace import Workspace  # noqa: E402

SIZE = (1280, 720)


def make_clip(src: Path, dst: Path, frames: int) -> None:
    """The first `frames` frames of `src` upscaled to 720p (H.264 crf 18), with the same span of audio."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vs = out.add_stream("libx264", rate=vin.average_rate)
        vs.width, vs.height, vs.pix_fmt = *SIZE, "yuv420p"
        vs.codec_context.options = {"crf": "18", "preset": "veryfast"}
        end = frames / float(vin.average_rate)
        enc = AudioEncoder(out, "aac", ain, start=0.0, end=end)
        n = 0
        for packet in inp.demux(vin, ain):
            if packet.stream.type == "audio":
                for f in packet.decode():
                    for p in enc.push(f):
                        out.mux(p)
                continue
            for f in packet.decode():
                if n >= frames:
                    continue
                img = cv2.resize(f.to_ndarray(format="bgr24"), SIZE, interpolation=cv2.INTER_CUBIC)
                vf = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
                vf.pts = n
                for p in vs.encode(vf):
                    out.mux(p)
                n += 1
        for p in vs.encode():
            out.mux(p)
        for p in enc.flush():
            out.mux(p)


CPU: dict[str, float] = {}


def best(fn, repeat: int, name: str = "") -> float:
    """Best wall time of `repeat` runs; the CPU time (all threads of this process) of that run goes to CPU."""
    runs = []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - t, time.process_time() - c))
    wall, cpu = min(runs)
    if name:
        CPU[name] = cpu
    return wall


def bare_decode(clip: Path) -> int:
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_type = "AUTO"
        return sum(1 for _ in c.decode(s))


def naive_extract(clip: Path, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_type = "AUTO"
        for i, f in enumerate(c.decode(s), 1):
            cv2.imwrite(str(folder / f"{i:06d}.png"), f.to_ndarray(format="bgr24"))


def decoded_yuv(clip: Path) -> list:
    with av.open(str(clip)) as c:
        return [f for f in c.decode(video=0)]


def bare_images(frames: list, suffix: str) -> None:
    """The extract stage's image work alone: each decoded frame to BGR and encoded, in memory."""
    with ImagePool() as pool:
        for _ in pool.ordered(lambda f: encode_image(frame_to_image(f, "bgr24"), suffix), frames):
            pass


def bare_png_to_yuv(blobs: list[bytes], colorspace: str | None) -> list:
    """The build stage's image work alone: each frame's PNG bytes decoded and converted to YUV, in memory."""
    def one(blob: bytes):
        return image_to_frame(cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR), "yuv420p",
                              colorspace=colorspace, color_range=1)

    with ImagePool() as pool:
        return list(pool.ordered(one, blobs))


def bare_encode(frames: list, out_path: Path, rate, bitrate: float) -> None:
    spec = FORMATS["mp4"]
    with av.open(str(out_path), "w") as out:
        vs = out.add_stream(spec.codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = *SIZE, spec.pix_fmt
        vs.codec_context.options = dict(spec.codec_options)
        vs.codec_context.thread_type = "FRAME"
        vs.bit_rate = int(bitrate * 1_000_000)
        for i, f in enumerate(frames):
            f.pts = i
            f.time_base = 1 / rate
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)


def naive_build(folder: Path, out_path: Path, rate, bitrate: float) -> None:
    spec = FORMATS["mp4"]
    with av.open(str(out_path), "w") as out:
        vs = out.add_stream(spec.codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = *SIZE, spec.pix_fmt
        vs.codec_context.options = dict(spec.codec_options)
        vs.codec_context.thread_type = "FRAME"
        vs.bit_rate = int(bitrate * 1_000_000)
        for i, p in enumerate(sorted(folder.glob("*.png"))):
            f = av.VideoFrame.from_ndarray(cv2.imread(str(p)), format="bgr24")
            f.pts = i
            for pk in vs.encode(f):
                out.mux(pk)
        for pk in vs.encode():
            out.mux(pk)


FRESH = """
import sys, time
sys.path.insert(0, {src!r})
if {tuned}:
    from facedouble.allocator import tune
    tune()
from facedouble.config import VideoExtractConfig
from facedouble.video import extract_frames
from facedouble.workspace import Workspace
t = time.perf_counter()
extract_frames(Workspace({ws!r}), "dst", VideoExtractConfig(format="png"))
print(time.perf_counter() - t)
"""


def clear_frames(ws: Workspace) -> None:
    """Empty data_dst/ of frames, so that the next extraction writes them all."""
    for p in ws.frames("dst").iterdir():
        if p.is_file():
            p.unlink()


def fresh_extract(ws: Workspace, tuned: bool) -> float:
    """PNG extraction in a new process, as a user's command runs it, with or without allocator.tune (in this
    process earlier steps have already raised glibc's dynamic mmap threshold, which hides its effect)."""
    import subprocess

    clear_frames(ws)
    code = FRESH.format(src=str(ROOT / "src"), tuned=tuned, ws=str(ws.root))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def load_avg() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "video.json")
    args = ap.parse_args()
    tune()  # as the CLI does

    tmp = Path(tempfile.mkdtemp(prefix="facedouble-bench-video-"))
    try:
        clip = tmp / "clip720.mp4"
        make_clip(media_dir() / "WolfgangLanger_Pexels.mp4", clip, args.frames)
        with av.open(str(clip)) as c:
            rate = c.streams.video[0].average_rate
        n = bare_decode(clip)
        bitrate = VideoBuildConfig().bitrate
        ws = Workspace(tmp / "ws").create()
        shutil.copy(clip, ws.root / "data_dst.mp4")

        def ours_extract(fmt: str) -> None:
            clear_frames(ws)
            extract_frames(ws, "dst", VideoExtractConfig(format=fmt))

        t = {}
        t["bare_decode"] = best(lambda: bare_decode(clip), args.repeat, "bare_decode")
        frames = decoded_yuv(clip)
        t["bare_images_png"] = best(lambda: bare_images(frames, ".png"), args.repeat, "bare_images_png")
        t["bare_images_jpg"] = best(lambda: bare_images(frames, ".jpg"), args.repeat, "bare_images_jpg")
        t["naive_extract_png"] = best(lambda: (shutil.rmtree(tmp / "naive", ignore_errors=True),
                                               naive_extract(clip, tmp / "naive")), args.repeat, "naive_extract_png")
        t["extract_jpg"] = best(lambda: ours_extract("jpg"), args.repeat, "extract_jpg")
        t["extract_png"] = best(lambda: ours_extract("png"), args.repeat, "extract_png")
        fresh = {name: min(fresh_extract(ws, tuned) for _ in range(args.repeat))
                 for name, tuned in (("untuned", False), ("tuned", True))}
        for p in ws.frame_files("dst"):
            os.link(p, ws.merged / p.name)
        blobs = [p.read_bytes() for p in sorted(ws.merged.iterdir()) if p.suffix == ".png"]
        t["bare_png_to_yuv"] = best(lambda: bare_png_to_yuv(blobs, None), args.repeat, "bare_png_to_yuv")
        t["bare_encode"] = best(lambda: bare_encode(frames, tmp / "bare.mp4", rate, bitrate), args.repeat, "bare_encode")
        # x264 on the very frames the build encodes (after the PNG round trip), for the sum of parts
        built_frames = bare_png_to_yuv(blobs, None)
        t["bare_encode_built"] = best(lambda: bare_encode(built_frames, tmp / "bare.mp4", rate, bitrate), args.repeat,
                                      "bare_encode_built")
        t["naive_build"] = best(lambda: naive_build(ws.merged, tmp / "naive.mp4", rate, bitrate), args.repeat, "naive_build")
        t["build_mp4"] = best(lambda: build_video(ws, VideoBuildConfig()), args.repeat, "build_mp4")
        png_bytes = sum(p.stat().st_size for p in ws.frame_files("dst"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    fps = {k: n / v for k, v in t.items()}
    ratios = {
        "extract_png_vs_bare_decode": t["bare_decode"] / t["extract_png"],
        "extract_jpg_vs_bare_decode": t["bare_decode"] / t["extract_jpg"],
        "extract_png_vs_naive_extract_png": t["naive_extract_png"] / t["extract_png"],
        "build_mp4_vs_bare_encode": t["bare_encode"] / t["build_mp4"],
        "build_mp4_vs_naive_build": t["naive_build"] / t["build_mp4"],
        "extract_png_vs_parts": (t["bare_decode"] + t["bare_images_png"]) / t["extract_png"],
        "extract_jpg_vs_parts": (t["bare_decode"] + t["bare_images_jpg"]) / t["extract_jpg"],
        "build_mp4_vs_parts": (t["bare_png_to_yuv"] + t["bare_encode_built"]) / t["build_mp4"],
    }
    cpu_ratios = {
        "extract_png_vs_naive_extract_png": CPU["naive_extract_png"] / CPU["extract_png"],
        "build_mp4_vs_bare_encode": CPU["bare_encode"] / CPU["build_mp4"],
        "build_mp4_vs_naive_build": CPU["naive_build"] / CPU["build_mp4"],
        "extract_png_vs_parts": (CPU["bare_decode"] + CPU["bare_images_png"]) / CPU["extract_png"],
        "extract_jpg_vs_parts": (CPU["bare_decode"] + CPU["bare_images_jpg"]) / CPU["extract_jpg"],
        "build_mp4_vs_parts": (CPU["bare_png_to_yuv"] + CPU["bare_encode_built"]) / CPU["build_mp4"],
    }
    result = {
        "clip": {"frames": n, "size": list(SIZE), "fps": float(rate), "source": "WolfgangLanger_Pexels.mp4 upscaled"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "av": av.__version__,
                    "load_avg_1m_at_end": load_avg()},
        "seconds": t, "frames_per_second": fps, "ratios": ratios,
        "cpu_seconds": CPU, "cpu_ratios": cpu_ratios,
        "fresh_process_extract_png_seconds": fresh,
        "png_mb_per_frame": png_bytes / n / 1e6, "target_ratio_vs_bare": 0.8,
    }
    print(f"clip: {n} frames {SIZE[0]}x{SIZE[1]} @ {float(rate):.3f} fps; {os.cpu_count()} CPUs, "
          f"load average {load_avg()}")
    for k, v in t.items():
        print(f"  {k:20s} {v:7.2f} s wall  {fps[k]:7.1f} frames/s   {CPU[k]:7.2f} s CPU")
    print(f"  PNG extract in a new process: {fresh['tuned']:.2f} s with allocator.tune (as the CLI runs it), "
          f"{fresh['untuned']:.2f} s without ({fresh['untuned'] / fresh['tuned']:.2f}x)")
    print("ratios (wall time; >= 1 means as fast as the baseline):")
    for k, v in ratios.items():
        print(f"  {k:36s} {v:5.2f}")
    print("ratios (CPU time of this process, less sensitive to other load):")
    for k, v in cpu_ratios.items():
        print(f"  {k:36s} {v:5.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
