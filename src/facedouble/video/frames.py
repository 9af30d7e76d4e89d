"""`video extract`: the frames of data_src.* / data_dst.* as numbered images.

Decoding runs on FFmpeg's own threads; colour conversion, rotation and PNG/JPEG encoding run on a small
thread pool, so both cores stay busy. Each frame is written atomically; a re-run decodes the video
again but converts and writes only the frames that are missing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction
from pathlib import Path

import av

from ..choices import Side, values
from ..config import VideoExtractConfig, write_json_atomic
from ..errors import InputError, OptionError
from ..files import remove_temporaries
from ..progress import Reporter
from ..workspace import IMAGE_SUFFIXES, Workspace
from .pixels import frame_to_image
from .images import ImagePool, ensure_writable, frame_name, numbered_images, write_image
from .probe import demux_decode, open_video, rotate_image, rotation_steps, stream_fps



@dataclasses.dataclass(frozen=True)
class ExtractResult:
    folder: Path
    written: int      # frames written by this run
    kept: int         # frames that were already there (resume)
    total: int        # frames of the output sequence


def _suffix(cfg: VideoExtractConfig) -> str:
    return ".jpg" if cfg.format == "jpg" else ".png"


def _check_resume(folder: Path, cfg: VideoExtractConfig, video: Path) -> None:
    """Refuse to mix two extractions in one folder (another format, rate or video); the user decides."""
    existing = numbered_images(folder)
    if not existing:
        return
    suffix = _suffix(cfg)
    same = (".jpg", ".jpeg") if suffix == ".jpg" else (suffix,)
    others = [p for _, p in existing if p.suffix.lower() not in same]
    if others:
        raise OptionError(
            f"--format {cfg.format} does not match the {others[0].suffix[1:]} frames already in {folder}; "
            f"use --format {others[0].suffix[1:].lower().replace('jpeg', 'jpg')}, or empty the folder first."
        )
    saved_path = folder / VideoExtractConfig.FILE
    try:
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    options = saved.get("options", {}) if isinstance(saved, dict) else {}
    if options.get("fps") != cfg.fps:
        was = options.get("fps")
        raise OptionError(
            f"--fps {cfg.fps if cfg.fps is not None else '(every frame)'} differs from the "
            f"{was if was is not None else 'every-frame'} extraction already in {folder}; "
            "give the same --fps to resume, or empty the folder first."
        )
    source = saved.get("source", {}) if isinstance(saved, dict) else {}
    if source.get("name") and (source.get("name") != video.name or source.get("size") != video.stat().st_size):
        raise InputError(
            f"{folder} holds frames of another video ({source.get('name')}, {source.get('size')} bytes), not of "
            f"{video.name}; empty the folder (e.g. `facedouble workspace clear`) before extracting again."
        )


def _convert_and_write(frame: av.VideoFrame, steps: int, path: Path, jpeg_quality: int) -> None:
    """On a worker thread: YUV -> BGR (the frame's own colour matrix and range), display rotation, write."""
    bgr = frame_to_image(frame, "bgr24", threads=1)  # one thread: the pool already runs one worker per core
    write_image(path, rotate_image(bgr, steps), jpeg_quality)


def extract_frames(ws: Workspace, side: Side, cfg: VideoExtractConfig | None = None, *,
                   reporter: Reporter | None = None) -> ExtractResult:
    """Write the frames of data_<side>.* into data_<side>/ as 000001.png, ... (or .jpg).

    `cfg.fps` picks frames at that rate (src only; dst keeps every frame because the result is rebuilt
    from them). Display rotation is applied; variable frame rates, grey-scale and 10-bit sources are
    converted to 8-bit BGR/RGB images. Saves the config as data_<side>/video_extract.json."""
    cfg = cfg or VideoExtractConfig()
    rep = reporter or Reporter()
    if side not in values(Side):
        raise OptionError(f"Side must be src or dst, not {side!r}.")
    if side == "dst" and cfg.fps is not None:
        raise OptionError("--fps applies to src only: dst keeps every frame so the result has the dst video's "
                          "length; leave --fps out for dst.")
    ws.require()
    video = ws.video(side)
    folder = ensure_writable(ws.frames(side))
    _check_resume(folder, cfg, video)
    remove_temporaries(folder)  # what a killed run was writing
    suffix = _suffix(cfg)
    have = {p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    write_json_atomic(folder / VideoExtractConfig.FILE, {
        "stage": type(cfg).__name__, "options": cfg.to_dict(),
        "source": {"name": video.name, "size": video.stat().st_size},
    })

    written = kept = number = 0
    with open_video(video) as container:
        vs = container.streams.video[0]
        vs.codec_context.thread_type = "AUTO"
        tb = Fraction(vs.time_base) if vs.time_base else None
        rate = stream_fps(vs)
        duration = float(vs.duration * tb) if (vs.duration and tb) else (container.duration or 0) / av.time_base
        if cfg.fps is not None:
            total = max(1, math.ceil(duration * cfg.fps)) if duration else None
        else:
            total = int(vs.frames) if vs.frames else (round(duration * rate) or None)
        packets = 0
        first_pts = None
        last_tick = -1
        index = -1

        def count(packet) -> None:
            nonlocal packets
            packets += 1 if packet.size else 0

        note = " (the frames written so far are kept)"
        with rep.task(f"Extracting frames of {video.name}", total) as advance, ImagePool() as pool:
            for _, frame in demux_decode(container, vs, video, note=note, on_packet=count):
                rep.check()
                index += 1
                if cfg.fps is not None:
                    if frame.pts is not None and tb is not None:
                        if first_pts is None:
                            first_pts = frame.pts
                        t = float((frame.pts - first_pts) * tb)
                    else:
                        t = index / float(rate)
                    tick = math.floor(t * cfg.fps + 1e-6)
                    if tick <= last_tick:
                        continue
                    last_tick = tick
                number += 1
                name = frame_name(number, suffix)
                if name in have:
                    kept += 1
                else:
                    pool.submit(_convert_and_write, frame, rotation_steps(frame.rotation), folder / name,
                                cfg.jpeg_quality)
                    written += 1
                advance(1)
        if vs.frames and packets < int(vs.frames):
            raise InputError(
                f"{video} is truncated: it holds {packets} of the {int(vs.frames)} frames its index lists; "
                f"copy or export it again ({number} frames were written and are kept)."
            )
    if number == 0:
        raise InputError(f"{video} holds no decodable frame; export it again.")
    return ExtractResult(folder=folder, written=written, kept=kept, total=number)
