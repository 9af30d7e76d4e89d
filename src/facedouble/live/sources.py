"""Live sources: a camera, a video file, or a network stream PyAV opens, as RGB frames with their times.

`open_source(spec)`: an integer or /dev/videoN (a camera: v4l2 on Linux, dshow on Windows, avfoundation on
macOS), a URL with a scheme (udp, rtp, rtsp, rtmp, srt, tcp, http(s): a stream), or a path (a video file).
Cameras and streams are live (`live` True: the pipeline drops frames rather than fall behind); a file is
read at the speed the pipeline takes and nothing is dropped. A camera that does not exist or a stream that
does not answer gets one sentence (InputError); a live source that stops mid-way raises `SourceStopped`.

Times: a file's and a stream's frames keep their own timestamps (seconds since the first frame); a camera's
are its arrival times. A live source's audio (a stream's audio track) goes, packet by packet and in order, to
`audio_sink(packet, t)` with `t` on the same timeline as the frames (never through the frame queues, so
dropping frames never cuts the audio). `t0` is the `time.monotonic()` at which the source's time 0 arrived
(the earliest arrival less the frame's time), what a real-time output and a microphone are timed against.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import InputError

STREAM_SCHEMES = ("udp", "rtp", "rtsp", "rtmp", "rtmps", "srt", "tcp", "http", "https")
OPEN_TIMEOUT = 10.0   # seconds to wait for a stream or camera to start
READ_TIMEOUT = 5.0    # seconds without data after which a live source counts as stopped


class SourceStopped(InputError):
    """A live source (camera, stream) stopped sending frames."""


@dataclass
class SourceFrame:
    image: np.ndarray      # (H, W, 3) RGB uint8
    index: int             # 0-based, in source order
    t: float               # seconds since the source's first frame
    pts: int | None        # the frame's own timestamp (file sources), in `time_base`
    arrived: float         # time.monotonic() when it was read (latency is measured from here)


def _is_stream(spec: str) -> bool:
    return "://" in spec and spec.split("://", 1)[0].lower() in STREAM_SCHEMES


def open_stream(url: str, what: str, open_timeout: float, read_timeout: float):
    """A PyAV container of a network stream (`what` names it in the error: "stream", "audio stream"); UDP gets a
    large receive FIFO and overruns that do not end it. InputError in one sentence when it does not open in time."""
    import av

    options = {"overrun_nonfatal": "1", "fifo_size": "1000000"} if url.lower().startswith("udp") else {}
    try:
        return av.open(url, options=options, timeout=(open_timeout, read_timeout))
    except Exception as e:  # noqa: BLE001
        raise InputError(f"The {what} {url} could not be opened within {open_timeout:.0f} s ({type(e).__name__}); "
                         f"check the address and that the sender is running.") from None


def _camera_device(spec: str) -> tuple[str, str] | None:
    """(device, input format) when `spec` names a camera, else None."""
    if spec.isdigit():
        if sys.platform.startswith("linux"):
            return f"/dev/video{int(spec)}", "v4l2"
        if sys.platform == "darwin":
            return spec, "avfoundation"
        return f"video={spec}", "dshow"
    if spec.startswith("/dev/video"):
        return spec, "v4l2"
    return None


class Source:
    """An open source; iterate `frames()`, then `close()` (or use it as a context manager)."""

    def __init__(self, spec: str, container, kind: str, path: Path | None = None, realtime: bool = False):
        self.spec, self.container, self.kind, self.path = spec, container, kind, path
        self.realtime = realtime  # a file played at its own speed, like a camera (benchmarks, rehearsals)
        self.stream = container.streams.video[0]
        self.stream.thread_type = "AUTO"
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        self.fps = float(rate) if rate else 30.0
        if not 1.0 <= self.fps <= 240.0:
            self.fps = 30.0
        self.time_base: Fraction = self.stream.time_base or Fraction(1, 90000)
        self.width, self.height = int(self.stream.codec_context.width), int(self.stream.codec_context.height)
        self.has_audio = bool(container.streams.audio)
        self.audio_stream = container.streams.audio[0] if self.has_audio else None
        self.audio_sink: Callable | None = None   # set before frames(): a live source's audio goes there
        self.t0: float | None = None
        self.frames_read = 0
        self._zero: float | None = None            # the first frame's own time, in seconds
        self._pending: list = []                   # audio packets read before the first frame

    def _decoded(self):
        """The video frames in order; a live source's audio packets to `audio_sink` on the way."""
        audio = self.audio_stream if self.audio_sink is not None else None
        if audio is None:
            yield from self.container.decode(self.stream)
            return
        for packet in self.container.demux(self.stream, audio):
            if packet.stream.type == "audio":
                self._audio(packet)
            else:
                yield from packet.decode()

    def _audio(self, packet) -> None:
        if packet.pts is None or packet.size == 0 or packet.time_base is None:
            return
        if self._zero is None:
            self._pending.append(packet)
            return
        self.audio_sink(packet, float(packet.pts * packet.time_base) - self._zero)

    @property
    def live(self) -> bool:
        return self.kind != "file" or self.realtime

    @property
    def label(self) -> str:
        return {"camera": f"camera {self.spec}", "stream": f"stream {self.spec}"}.get(self.kind, str(self.path))

    def frames(self) -> Iterator[SourceFrame]:
        import av

        from ..video.pixels import frame_to_image

        first_pts = None
        start = time.monotonic()
        try:
            for frame in self._decoded():
                now = time.monotonic()
                if frame.pts is not None and first_pts is None:
                    first_pts = frame.pts
                if self.kind != "camera" and frame.pts is not None:
                    t = float((frame.pts - first_pts) * self.time_base)
                    if self.realtime:
                        time.sleep(max(0.0, start + t - now))
                        now = time.monotonic()
                else:
                    t = now - start
                self.t0 = now - t if self.t0 is None else min(self.t0, now - t)
                if self._zero is None:
                    self._zero = float(frame.pts * self.time_base) if frame.pts is not None else 0.0
                    for packet in self._pending:   # the audio before the first frame (cut at 0 by the output)
                        self._audio(packet)
                    self._pending = []
                image = frame_to_image(frame, "rgb24")
                yield SourceFrame(image, self.frames_read, t, frame.pts, now)
                self.frames_read += 1
        except (av.error.ExitError, av.error.EOFError, av.error.OSError, TimeoutError) as e:
            if self.kind == "file":
                raise InputError(f"{self.path} could not be read past frame {self.frames_read} ({e}); the file "
                                 f"is damaged: cut it or convert it again.") from None
            raise SourceStopped(f"The {self.label} stopped after {self.frames_read} frame(s) ({type(e).__name__}); "
                                f"check the sender and start again.") from None
        except av.error.FFmpegError as e:
            raise InputError(f"The {self.label} could not be decoded ({e}); give a source in a format FFmpeg reads.") \
                from None
        if self.kind != "file":
            raise SourceStopped(f"The {self.label} stopped sending after {self.frames_read} frame(s); check the "
                                f"sender and start again.")

    def close(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - closing a broken stream must not hide why it broke
            pass

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(spec: str | os.PathLike, *, open_timeout: float | None = None,
                read_timeout: float | None = None, realtime: bool = False) -> Source:
    """Open a camera, stream or video file (see the module doc). `realtime`: play a file at its own speed
    and treat it as live (frames are dropped when the pipeline is busy)."""
    import av

    spec = str(spec)
    open_timeout = OPEN_TIMEOUT if open_timeout is None else open_timeout
    read_timeout = READ_TIMEOUT if read_timeout is None else read_timeout
    if not spec:
        raise InputError("--source is empty; give a camera (0 or /dev/video0), a video file or a stream URL.")
    camera = _camera_device(spec)
    if camera is not None:
        device, fmt = camera
        if fmt == "v4l2" and not Path(device).exists():
            raise InputError(f"There is no camera {device}; connect one (ls /dev/video*), or give a video file or "
                             f"a stream URL with --source.")
        try:
            container = av.open(device, format=fmt, timeout=(open_timeout, read_timeout))
        except Exception as e:  # noqa: BLE001
            raise InputError(f"The camera {device} could not be opened ({type(e).__name__}: {e}); check that no "
                             f"other program uses it.") from None
        kind, path = "camera", None
    elif _is_stream(spec):
        container = open_stream(spec, "stream", open_timeout, read_timeout)
        kind, path = "stream", None
    else:
        from ..video.probe import check_readable

        path = check_readable(Path(spec), "Video")
        try:
            container = av.open(str(path))
        except Exception as e:  # noqa: BLE001
            raise InputError(f"{path} is not a video FFmpeg can read ({type(e).__name__}); give a video file, a "
                             f"camera or a stream URL.") from None
        kind = "file"
    if not container.streams.video:
        container.close()
        raise InputError(f"{spec} has no video; give a source with a picture.")
    return Source(spec, container, kind, path, realtime=realtime and kind == "file")
