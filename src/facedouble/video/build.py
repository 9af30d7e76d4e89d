"""`video build`: numbered frames (data_dst/merged by default) into result.mp4 / .avi / .mov, with the
timing and the audio of data_dst.*.

Timing: frame file N gets the presentation time of the N-th frame of the dst video (read from its
packets), so a variable-frame-rate dst keeps its exact timing and length; AVI, which has no per-frame
times, uses the dst's average rate. Audio: the dst's first audio track, copied when the container takes
its codec, otherwise re-encoded (AAC, or MP3 in AVI); a dst without audio gives a silent result.

Provenance hooks (one place each, for the provenance module to fill in):
  * `container_metadata(run_id)`: tags written into the container of every result;
  * `finalize(path)`: runs on the finished file, still under its temporary name, before it is moved into
    place (C2PA signing goes here), so a result is only ever visible complete and signed.
The result is written to a temporary name and renamed; an existing result is renamed to result.1.mp4,
result.2.mp4, ... first, never overwritten.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import deque
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

from ..files import remove_temporaries
from ..config import VideoBuildConfig, write_json_atomic
from ..errors import InputError, WorkspaceError
from ..progress import Reporter
from ..workspace import IMAGE_SUFFIXES, Workspace
from .audio import AudioEncoder, can_copy
from .pixels import image_to_frame
from .images import ImagePool, ensure_writable, keep_backup, numbered_images, read_image
from .probe import Timeline, decoding, open_video, timeline

MERGE_RUN_NAME = "merge_run.json"  # written by the merge stage: {"run_id": ...}


@dataclasses.dataclass(frozen=True)
class OutputFormat:
    suffix: str
    container: str
    codec: str
    pix_fmt: str
    codec_options: dict
    bitrate: bool                  # --bitrate applies
    constant_rate: bool            # the container has no per-frame times (AVI)
    audio_copy: tuple[str, ...]    # audio codecs copied as they are
    audio_codec: str               # otherwise re-encoded to this
    alpha: bool = False            # alpha from merged_mask/
    yuv: bool = True               # converted to YUV with the dst's colour matrix (else stays RGB)
    container_options: dict = dataclasses.field(default_factory=dict)


_MOV_OPTIONS = {"movflags": "+use_metadata_tags"}
FORMATS: dict[str, OutputFormat] = {
    # H.264 4:2:0, the format every player takes.
    "mp4": OutputFormat(".mp4", "mp4", "libx264", "yuv420p", {"preset": "medium"}, True, False,
                        ("aac", "mp3"), "aac", container_options={"movflags": "+use_metadata_tags+faststart"}),
    # MPEG-4 Part 2 in AVI (what "XviD" players expect); constant frame rate.
    "avi": OutputFormat(".avi", "avi", "mpeg4", "yuv420p", {}, True, True, ("mp3", "pcm_s16le"), "libmp3lame"),
    # Lossless: H.264 coding the RGB planes with qp 0, so the frames come back bit-exact (4:4:4 profile:
    # ffmpeg-based players and editors read it, browsers do not).
    "mp4-lossless": OutputFormat(".mp4", "mp4", "libx264rgb", "bgr24", {"qp": "0", "preset": "fast"}, False, False,
                                 ("aac", "mp3"), "aac", yuv=False, container_options=_MOV_OPTIONS),
    # QuickTime Animation (lossless RLE) with alpha from merged_mask/, for compositing.
    "mov-alpha": OutputFormat(".mov", "mov", "qtrle", "argb", {}, False, False, ("aac", "mp3", "alac"), "aac",
                              alpha=True, yuv=False, container_options=_MOV_OPTIONS),
}

_COLORSPACES = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020"}


@dataclasses.dataclass(frozen=True)
class BuildResult:
    path: Path
    frames: int                 # frames written
    dst_frames: int             # frames of the dst video
    duration: float             # seconds of video written
    audio: str                  # "copied", "encoded" or "none"
    backup: Path | None         # where an older result was moved
    run_id: str


# -- provenance hooks ------------------------------------------------------------------------------------

def container_metadata(run_id: str) -> dict[str, str]:
    """Tags for the container of every result (PROVENANCE HOOK): the AI-generated tag of
    `facedouble.provenance.tag`. These keys win over caller-supplied `metadata` with the same name."""
    from ..provenance.tag import container_metadata as provenance_tags

    return provenance_tags(run_id)


def signer_check(cfg: VideoBuildConfig) -> None:
    """Check the signing certificate and key (`--sign-cert/--sign-key`, else the local certificate) before any
    work: ProvenanceError in one sentence when they are unusable."""
    from ..provenance.credentials import signing_identity

    signing_identity(cfg.sign_cert, cfg.sign_key)


def finalize(path: Path, *, ws: Workspace, dst: Path, run_id: str, title: str,
             cfg: VideoBuildConfig | None = None) -> None:
    """Sign the complete, closed result file `path` (temporary name, final suffix) with C2PA content
    credentials before it is moved into place as `title`: the dst video as parent ingredient, a hash of the
    training sets, the run id; with `cfg.sign_cert`/`cfg.sign_key` when given, else the local certificate.
    Raises to abort the build (the older result is then kept). No off switch."""
    from ..provenance import sign_result, training_hash

    sign_result(path, dst, training_hash(ws.aligned("src"), ws.aligned("dst")), run_id, title=title,
                cert=cfg.sign_cert if cfg else None, key=cfg.sign_key if cfg else None)


def merge_run_id(ws: Workspace) -> str | None:
    """The run id the merger recorded in data_dst/merge_run.json (the one its watermark carries)."""
    try:
        data = json.loads((ws.frames("dst") / MERGE_RUN_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    run_id = data.get("run_id") if isinstance(data, dict) else None
    return str(run_id) if run_id else None


# -- the stage -------------------------------------------------------------------------------------------

def build_video(ws: Workspace, cfg: VideoBuildConfig | None = None, *, reporter: Reporter | None = None,
                metadata: dict[str, str] | None = None, run_id: str | None = None) -> BuildResult:
    """Encode the frames of data_dst/merged (or `cfg.input_dir`) into result.<ext> with the dst's timing and
    audio. `metadata` adds container tags (the provenance tags of `container_metadata` always win);
    `run_id` defaults to the merge run's (data_dst/merge_run.json), else a new one."""
    cfg = cfg or VideoBuildConfig()
    rep = reporter or Reporter()
    spec = FORMATS[cfg.format]
    ws.require()
    signer_check(cfg)  # a bad --sign-cert/--sign-key stops here, before any work
    folder = _input_dir(ws, cfg)
    frames = numbered_images(folder)
    if not frames:
        raise InputError(f"No numbered frames (000001.png, ...) in {folder}; run `facedouble merge` first, "
                         "or give the frames folder with --input.")
    for (a, pa), (b, pb) in zip(frames, frames[1:]):
        if a == b:
            raise InputError(f"{folder} holds both {pa.name} and {pb.name} for frame {a}; keep one of them.")
    dst = ws.video("dst")
    tl = timeline(dst)
    if tl.frames == 0:
        raise InputError(f"{dst} holds no video frames; put the dst video there again.")
    masks = _mask_paths(ws, frames) if spec.alpha else {}
    first = read_image(frames[0][1])
    size = (first.shape[1], first.shape[0])
    out_path = ws.result(spec.suffix)
    ensure_writable(ws.root)
    remove_temporaries(ws.root)  # a killed build's partial video
    if not run_id:
        from ..provenance import new_run_id

        run_id = merge_run_id(ws) or new_run_id()
    tags = {**{str(k): str(v) for k, v in (metadata or {}).items()}, **container_metadata(run_id)}
    tmp = out_path.with_name(f".{out_path.stem}.partial-{os.getpid()}{spec.suffix}")
    try:
        audio_mode, duration = _write(tmp, spec, cfg, frames, masks, tl, dst, size, tags, rep,
                                      out_path.name)
        finalize(tmp, ws=ws, dst=dst, run_id=run_id, title=out_path.name, cfg=cfg)
        backup = keep_backup(out_path)
        os.replace(tmp, out_path)
    except OSError as e:
        raise WorkspaceError(f"Cannot write {out_path} ({e.strerror or e}); free some disk space or make "
                             f"{ws.root} writable.") from None
    finally:
        tmp.unlink(missing_ok=True)
    write_json_atomic(ws.config_file(VideoBuildConfig), {"stage": type(cfg).__name__, "options": cfg.to_dict(),
                                               "result": out_path.name, "run_id": run_id})
    if len(frames) != tl.frames:
        rep.warn(f"{folder} holds {len(frames)} frames but {dst.name} has {tl.frames}; missing frames "
                 "show the previous frame longer.")
    if backup is not None:
        rep.info(f"the previous {out_path.name} was kept as {backup.name}.")
    return BuildResult(path=out_path, frames=len(frames), dst_frames=tl.frames, duration=duration,
                       audio=audio_mode, backup=backup, run_id=run_id)


def _input_dir(ws: Workspace, cfg: VideoBuildConfig) -> Path:
    if not cfg.input_dir:
        return ws.merged
    given = Path(cfg.input_dir).expanduser()
    for candidate in (given, ws.root / given):
        if candidate.is_dir():
            return candidate
    raise InputError(f"--input {cfg.input_dir} is not a folder; give the folder that holds the frames.")


def _mask_paths(ws: Workspace, frames: list[tuple[int, Path]]) -> dict[int, Path]:
    folder = ws.merged_mask
    by_stem = {}
    if folder.is_dir():
        by_stem = {p.stem: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
    out = {}
    for number, path in frames:
        mask = by_stem.get(path.stem)
        if mask is None:
            raise InputError(f"No mask for {path.name} in {folder}; --format mov-alpha takes the alpha from "
                             "there: run `facedouble merge` again, or choose another --format.")
        out[number] = mask
    return out


def _write(tmp: Path, spec: OutputFormat, cfg: VideoBuildConfig, frames: list[tuple[int, Path]],
           masks: dict[int, Path], tl: Timeline, dst: Path, size: tuple[int, int], tags: dict[str, str],
           rep: Reporter, label: str) -> tuple[str, float]:
    w, h = size
    ew, eh = (w + w % 2, h + h % 2) if spec.pix_fmt == "yuv420p" else (w, h)
    with open_video(dst, "Dst video") as src:
        vin = src.streams.video[0]
        vcc = vin.codec_context
        ain = src.streams.audio[0] if src.streams.audio else None
        zero = float(tl.start * tl.time_base)

        out = av.open(str(tmp), "w", format=spec.container, options=dict(spec.container_options))
        try:
            out.metadata.update(tags)
            rate = tl.fps
            if spec.constant_rate:  # one tick per frame; MPEG-4 takes at most 65535 ticks per second
                tb = (1 / rate).limit_denominator(65535)
                rate = 1 / tb
            else:
                tb = tl.time_base
            vs = out.add_stream(spec.codec, rate=rate)
            vs.width, vs.height, vs.pix_fmt = ew, eh, spec.pix_fmt
            vs.time_base = tb
            vs.codec_context.time_base = tb
            if spec.codec_options:
                vs.codec_context.options = dict(spec.codec_options)
            if spec.codec.startswith("libx264"):
                vs.codec_context.thread_type = "FRAME"  # x264's frame threads: faster and better than slices
            if spec.bitrate:
                vs.bit_rate = int(cfg.bitrate * 1_000_000)
            if spec.codec == "mpeg4":
                vs.codec_tag = "XVID"
            colorspace = color_range = None
            if spec.yuv:
                colorspace = _COLORSPACES.get(int(vcc.colorspace or 2))
                color_range = 2 if vcc.color_range == 2 else 1
                vs.codec_context.color_range = color_range
                for attr in ("colorspace", "color_primaries", "color_trc"):
                    value = getattr(vcc, attr, None)
                    if value:
                        setattr(vs.codec_context, attr, value)

            feed = _AudioFeed(src, ain, out, spec, zero, dst) if ain is not None else None

            def load(item: tuple[int, Path]) -> tuple[int, av.VideoFrame]:
                number, path = item
                bgr = read_image(path)
                if (bgr.shape[1], bgr.shape[0]) != (w, h):
                    raise InputError(f"{path} is {bgr.shape[1]}x{bgr.shape[0]} but {frames[0][1].name} is {w}x{h}; "
                                     "all frames must have one size.")
                if spec.alpha:
                    alpha = read_image(masks[number], cv2.IMREAD_GRAYSCALE)
                    if alpha.shape[:2] != (h, w):
                        raise InputError(f"Mask {masks[number]} is {alpha.shape[1]}x{alpha.shape[0]}, its frame {w}x{h}; "
                                         "run `facedouble merge` again.")
                    argb = np.dstack([alpha, bgr[..., 2], bgr[..., 1], bgr[..., 0]])
                    return number, av.VideoFrame.from_ndarray(argb, format="argb")
                if (ew, eh) != (w, h):
                    bgr = cv2.copyMakeBorder(bgr, 0, eh - h, 0, ew - w, cv2.BORDER_REPLICATE)
                if spec.yuv:  # one swscale thread: the pool already runs one per core
                    return number, image_to_frame(bgr, spec.pix_fmt, colorspace=colorspace, color_range=color_range)
                return number, av.VideoFrame.from_ndarray(bgr, format="bgr24")

            end_pts = 0
            durations: dict[int, int] = {}

            def mux_video(packets) -> None:
                for packet in packets:
                    if packet.pts in durations:  # the encoder guesses; the dst's own durations keep its length
                        packet.duration = durations.pop(packet.pts)
                    out.mux(packet)

            with ImagePool() as pool, rep.task(f"Building {label}", len(frames)) as advance:
                for number, frame in pool.ordered(load, frames):
                    rep.check()
                    if spec.constant_rate:
                        pts, dur = number - 1, 1
                    else:
                        pts, dur = tl.frame_pts(number)
                    frame.pts, frame.time_base, frame.duration = pts, tb, dur
                    end_pts = max(end_pts, pts + dur)
                    durations[pts] = dur
                    mux_video(vs.encode(frame))
                    if feed is not None:
                        feed.mux_until(float(pts * tb))
                    advance(1)
                mux_video(vs.encode(None))
            if feed is not None:
                feed.mux_until(None)
            return (feed.mode if feed is not None else "none"), float(end_pts * tb)
        finally:
            out.close()


class _AudioFeed:
    """The dst's audio track going into the output, interleaved with the video by time."""

    def __init__(self, src, ain, out, spec: OutputFormat, zero: float, dst: Path):
        self.src, self.ain, self.out, self.dst, self.zero = src, ain, out, dst, zero
        self.packets = src.demux(ain)
        self.ready: deque[tuple[float, av.Packet]] = deque()
        self.done = False
        if can_copy(ain, spec.audio_copy):
            self.mode = "copied"
            self.stream = out.add_stream_from_template(ain)
            self.encoder = None
            self.shift = round(zero / ain.time_base) if ain.time_base else 0
        else:
            self.mode = "encoded"
            self.encoder = AudioEncoder(out, spec.audio_codec, ain, zero=zero)
            self.stream = self.encoder.stream

    def _more(self) -> None:
        """Read one input packet and queue what it gives."""
        with decoding(self.dst, "Dst video"):
            try:
                packet = next(self.packets)
            except StopIteration:
                packet = None
            flush = packet is None or (packet.dts is None and packet.size == 0)
            frames = packet.decode() if (self.encoder is not None and packet is not None) else []
        if flush:
            self.done = True
            if self.encoder is not None:
                for frame in frames:  # what the decoder still held
                    self._queue(self.encoder.push(frame))
                self._queue(self.encoder.flush())
            return
        if self.encoder is not None:
            for frame in frames:
                self._queue(self.encoder.push(frame))
            return
        if packet.pts is None and packet.dts is None:
            return
        if packet.pts is not None:
            packet.pts -= self.shift
        if packet.dts is not None:
            packet.dts -= self.shift
        t = float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
        packet.stream = self.stream
        self.ready.append((t, packet))

    def _queue(self, packets: Iterator[av.Packet]) -> None:
        for p in packets:
            t = float(p.pts * p.time_base) if p.pts is not None and p.time_base else 0.0
            self.ready.append((t, p))

    def mux_until(self, t: float | None) -> None:
        """Mux audio up to video time `t` seconds (None: all that is left)."""
        while True:
            while self.ready:
                if t is not None and self.ready[0][0] > t:
                    return
                self.out.mux(self.ready.popleft()[1])
            if self.done:
                return
            self._more()
