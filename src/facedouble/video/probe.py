"""Opening videos with PyAV and reading what they hold, with one clear sentence for every bad input.

Everything that reads a video goes through `open_video` (missing file, not a video, truncated file,
no video stream) and `decoding` (errors while decoding), so the stages never show an FFmpeg traceback.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

from ..choices import Side
from ..config import VideoExtractConfig
from ..errors import InputError
from ..workspace import Workspace


# How many index entries at the end of each stream the truncation check looks at.
_TAIL_ENTRIES = 32


def check_readable(path: Path, what: str = "Video") -> Path:
    """The path, if it is an existing readable file; InputError otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {path} does not exist; check the name, or put the file there.")
    if not path.is_file():
        raise InputError(f"{what} {path} is a folder, not a file; give the path of a video file.")
    if not os.access(path, os.R_OK):
        raise InputError(f"{what} {path} cannot be read (permission denied); make it readable.")
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path} is empty (0 bytes); copy or export it again.")
    return path


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return text.split(":")[0].strip() if text else type(e).__name__


@contextmanager
def open_video(path: str | os.PathLike, what: str = "Video") -> Iterator[av.container.InputContainer]:
    """Open a video for reading; InputError for a missing, unreadable, non-video or truncated file."""
    path = check_readable(Path(path), what)
    try:
        container = av.open(str(path), mode="r", metadata_errors="replace")
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise InputError(
            f"{what} {path} is not a readable video ({_reason(e)}); it may be truncated or not a video at all: "
            "copy or export it again."
        ) from None
    try:
        if not container.streams.video:
            raise InputError(f"{what} {path} holds no video stream; give a video file (mp4, mov, mkv, avi).")
        _check_complete(container, path, what)
        yield container
    finally:
        container.close()


def _check_complete(container: av.container.InputContainer, path: Path, what: str) -> None:
    """A file whose index points past its end was cut short (an interrupted copy or download)."""
    size = path.stat().st_size
    end = 0
    for stream in container.streams:
        try:
            entries = stream.index_entries
            n = len(entries)
        except (AttributeError, av.FFmpegError):  # pragma: no cover - older PyAV
            continue
        for i in range(max(0, n - _TAIL_ENTRIES), n):
            e = entries[i]
            if e.pos >= 0:
                end = max(end, e.pos + e.size)
    if end > size:
        raise InputError(
            f"{what} {path} is truncated ({size} of at least {end} bytes are there); copy or download it again."
        )


@contextmanager
def decoding(path: Path, what: str = "Video", note: str = "") -> Iterator[None]:
    """Turn FFmpeg errors raised while demuxing or decoding `path` into one InputError (`note` is
    appended, e.g. what was kept)."""
    try:
        yield
    except av.FFmpegError as e:
        raise InputError(
            f"{what} {path} is corrupt and could not be decoded ({_reason(e)}); export it again{note}."
        ) from None


def demux_decode(container, streams, path: Path, what: str = "Video", note: str = "",
                 on_packet=None) -> Iterator[tuple[str, av.frame.Frame]]:
    """(stream type, frame) for every frame of `streams`, in file order. Only demuxing and decoding are
    guarded, so an error raised by whatever consumes the frames is never blamed on the input.
    `on_packet(packet)` sees each packet before it is decoded (e.g. to count them)."""
    packets = container.demux(streams)
    while True:
        with decoding(path, what, note):
            try:
                packet = next(packets)
            except StopIteration:
                return
            if on_packet is not None:
                on_packet(packet)
            frames = packet.decode()
        kind = packet.stream.type
        for frame in frames:
            yield kind, frame


def rotation_steps(degrees: float | int | None) -> int:
    """Quarter turns counter-clockwise (0..3) that a display rotation asks for."""
    if not degrees:
        return 0
    return int(round(float(degrees) / 90.0)) % 4


def rotate_image(image, steps: int):
    """Rotate an HWC image by `steps` quarter turns counter-clockwise (the display rotation)."""
    if steps == 0:
        return image
    import cv2

    code = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}[steps]
    return cv2.rotate(image, code)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a video holds. Sizes are as displayed (after the rotation is applied)."""

    path: Path
    width: int
    height: int
    rotation: int            # degrees counter-clockwise the player rotates the coded picture
    fps: Fraction            # average frame rate (frames / duration; right for variable frame rates too)
    time_base: Fraction
    frames: int              # frames the container's index lists (0 = unknown)
    duration: float          # seconds of the video stream
    codec: str
    pix_fmt: str
    audio_tracks: int


def stream_fps(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(25)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read the header and the first frame (for the rotation) of a video."""
    path = Path(path)
    with open_video(path) as container:
        vs = container.streams.video[0]
        cc = vs.codec_context
        rotation = 0
        with decoding(path):
            for frame in container.decode(vs):
                rotation = int(frame.rotation or 0)
                break
        tb = Fraction(vs.time_base) if vs.time_base else Fraction(1, 90000)
        if vs.duration:
            duration = float(vs.duration * tb)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        w, h = cc.width, cc.height
        if rotation_steps(rotation) % 2:
            w, h = h, w
        return VideoInfo(path=path, width=w, height=h, rotation=rotation, fps=stream_fps(vs), time_base=tb,
                         frames=int(vs.frames or 0), duration=duration, codec=cc.name,
                         pix_fmt=cc.pix_fmt or "", audio_tracks=len(container.streams.audio))


@dataclasses.dataclass(frozen=True)
class Timeline:
    """When each frame of a video is shown, read from its packets (no decoding).

    `pts[i]` is frame i+1's time in `time_base` units counted from the first frame; `durations[i]` how
    long it stays. Variable frame rates keep their own timing; `start` is the first frame's own pts."""

    time_base: Fraction
    start: int
    pts: list[int]
    durations: list[int]
    fps: Fraction

    @property
    def frames(self) -> int:
        return len(self.pts)

    @property
    def end(self) -> int:
        return (self.pts[-1] + self.durations[-1]) if self.pts else 0

    @property
    def duration(self) -> float:
        return float(self.end * self.time_base)

    def frame_pts(self, number: int) -> tuple[int, int]:
        """(pts, duration) of frame `number` (1-based); beyond the end, extrapolated at the average rate."""
        if 1 <= number <= len(self.pts):
            return self.pts[number - 1], self.durations[number - 1]
        step = max(1, round(1 / (self.fps * self.time_base)))
        return self.end + (number - len(self.pts) - 1) * step, step


def timeline(path: str | os.PathLike) -> Timeline:
    """The frame timing of a video from its packets. Packets the decoder drops (edit lists) are left out,
    so entry i matches the i-th decoded frame, i.e. the frame file numbered i+1."""
    path = Path(path)
    with open_video(path) as container:
        vs = container.streams.video[0]
        tb = Fraction(vs.time_base) if vs.time_base else Fraction(1, 90000)
        fps = stream_fps(vs)
        packets: list[tuple[int | None, int]] = []
        with decoding(path):
            for packet in container.demux(vs):
                if packet.size == 0 or packet.is_discard:
                    continue
                packets.append((packet.pts, int(packet.duration or 0)))
    step = max(1, round(1 / (fps * tb)))
    if not packets:
        return Timeline(tb, 0, [], [], fps)
    if any(p is None for p, _ in packets):  # no timestamps (raw streams): constant rate
        times = [i * step for i in range(len(packets))]
        start, last_duration = 0, step
    else:
        ordered = sorted(packets)  # type: ignore[arg-type]
        start = int(ordered[0][0])  # type: ignore[arg-type]
        times = [int(p) - start for p, _ in ordered]  # type: ignore[arg-type]
        last_duration = ordered[-1][1]
    durations = [b - a for a, b in zip(times, times[1:])]
    durations.append(last_duration or (durations[-1] if durations else step))
    return Timeline(tb, start, times, durations, fps)


def audio_streams(container) -> list:
    return list(container.streams.audio)


def frames_per_second(ws: Workspace, side: Side) -> float | None:
    """The rate the frames of data_<side>/ stand for, in frames per second of footage: the `--fps` of the
    `video extract` that wrote them, else the rate of the data_<side> video they were extracted from (its
    name and size as saved then); None when that is unknown (frames put there by hand, the video gone)."""
    try:
        saved = json.loads((ws.config_file(VideoExtractConfig, side)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict):
        return None
    options = saved.get("options")
    fps = options.get("fps") if isinstance(options, dict) else None
    if isinstance(fps, (int, float)) and not isinstance(fps, bool) and math.isfinite(fps) and fps > 0:
        return float(fps)
    source = saved.get("source") if isinstance(saved.get("source"), dict) else {}
    try:
        video = ws.video(side)
        if source.get("name") != video.name or source.get("size") != video.stat().st_size:
            return None
        with open_video(video) as container:
            rate = float(stream_fps(container.streams.video[0]))
    except (InputError, OSError):
        return None
    return rate if math.isfinite(rate) and rate > 0 else None
