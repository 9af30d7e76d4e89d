"""Live outputs: a video file, a network stream, a virtual camera. Every frame given to them is already
watermarked (the pipeline marks each frame before any output sees it).

`open_output(spec, source, run_id)`: a URL (udp, tcp, srt: MPEG-TS; rtmp: FLV) is a stream; `vcam` is the
system's virtual camera (pyvirtualcam: v4l2loopback on Linux, OBS on Windows/macOS); `none` is no output (only
the UI's view); anything else is a file (.mp4 or .mov). A file keeps the source's timing (a file's and a
stream's own timestamps, a camera's arrival times) and a file source's audio, carries the AI-generated
container tag and is signed with C2PA content credentials when it is closed; until then it is written under a
temporary name, so a run that stops leaves a complete, closed file with the frames made so far.

Audio recorded while it runs (a stream's audio track, `--audio`): `take_audio(stream, delay)` says whether the
output carries it, then `add_audio(packet, t)` takes each packet in order, `t` on the frames' timeline. A file
keeps the packets in a temporary beside it and muxes them at close, from the first frame to the end of the
last (copied when the container takes the codec, else AAC), in sync by their times whatever frames were
dropped; a stream muxes them as they come, `delay()` seconds after their capture like the held-back video
(`--delay-ms`), copied when MPEG-TS/FLV take the codec, else AAC. A virtual camera has no sound.
"""

from __future__ import annotations

import os
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError, OptionError
from .sources import STREAM_SCHEMES, Source, SourceFrame

FILE_SUFFIXES = {".mp4": "mp4", ".mov": "mov"}
STREAM_AUDIO = {"mpegts": ("aac", "mp3", "mp2", "ac3", "eac3", "opus"), "flv": ("aac", "mp3")}   # copied as they are
LIVE_TIME_BASE = Fraction(1, 1000)
VCAM = ("vcam", "virtual", "virtualcam")
NO_OUTPUT = ("", "none")   # only the UI's view (LiveSession.latest_frame)


def _even(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        import cv2

        image = cv2.copyMakeBorder(image, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    return image


def _yuv(image: np.ndarray):
    """The RGB frame as BT.709 limited-range yuv420p, converted from rgb24 directly: the same planes, bit for
    bit, as through BGR (`video.pixels.image_to_frame`), without the flipped copy (0.9 ms instead of 3.3 ms
    for 640x480)."""
    import av

    from ..video.pixels import ENCODE_FLAGS

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(_even(image)), format="rgb24")
    return frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range=1, interpolation=ENCODE_FLAGS,
                          threads=1)


class FileOutput:
    """A video file (see the module doc)."""

    def __init__(self, path: Path, source: Source, run_id: str):
        import av

        from ..provenance import container_metadata

        self.path, self.source, self.run_id = Path(path), source, run_id
        self.format = FILE_SUFFIXES[self.path.suffix.lower()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tags = container_metadata(run_id)
        self._video = self.path.with_name(f".{self.path.name}.{os.getpid()}.video.mp4")
        self._container = av.open(str(self._video), "w", format="mp4")
        self.time_base = source.time_base if not source.live else LIVE_TIME_BASE
        stream = self._container.add_stream("libx264", rate=Fraction(source.fps).limit_denominator(1001))
        stream.width, stream.height = source.width + source.width % 2, source.height + source.height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        stream.codec_context.color_range = 1
        stream.codec_context.options = {"preset": "veryfast", "crf": "18"}
        self._stream = stream
        self._first_pts: int | None = None
        self._first_t: float | None = None
        self._last_pts = -1
        self.frames = 0
        self.end_time = 0.0
        self._closed = False
        self._audio_path: Path | None = None   # the recorded audio (take_audio), muxed at close
        self._audio_out = None
        self._audio_stream = None
        self._audio_dts: int | None = None
        self.audio_packets = 0

    def take_audio(self, stream, delay=None) -> bool:
        """Record `stream`'s packets (add_audio) to mux at close instead of a file source's own audio."""
        import av

        self._audio_path = self.path.with_name(f".{self.path.name}.{os.getpid()}.audio.mkv")
        self._audio_out = av.open(str(self._audio_path), "w", format="matroska")
        self._audio_stream = self._audio_out.add_stream_from_template(stream)
        return True

    def add_audio(self, packet, t: float) -> None:
        """One recorded packet at `t` s on the frames' timeline (before the first frame: left out)."""
        if self._audio_out is None or t < 0 or self._closed:
            return
        shift = round(t / packet.time_base) - packet.pts
        dts = (packet.dts if packet.dts is not None else packet.pts) + shift
        if self._audio_dts is not None and dts <= self._audio_dts:
            return   # a repeated or out-of-order timestamp (a stream's hiccup): the muxer refuses it
        packet.pts, packet.dts = packet.pts + shift, dts
        self._audio_dts = dts
        packet.stream = self._audio_stream
        self._audio_out.mux(packet)
        self.audio_packets += 1

    def write(self, image: np.ndarray, sf: SourceFrame) -> None:
        if self._first_t is None:
            self._first_t = sf.t   # the file starts with the first frame written (a live source drops some)
        if self.source.live or sf.pts is None:
            pts = int(round((sf.t - self._first_t) / float(self.time_base)))
        else:
            if self._first_pts is None:
                self._first_pts = sf.pts
            pts = sf.pts - self._first_pts
        pts = max(pts, self._last_pts + 1)
        frame = _yuv(image)
        frame.pts, frame.time_base = pts, self.time_base
        self._last_pts = pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1
        self.end_time = float(pts * self.time_base) + 1.0 / self.source.fps

    def set_threads(self, n: int) -> None:
        """Encode on `n` threads (before the first frame; the live pipeline gives it the cores it leaves)."""
        _encoder_threads(self._stream, n, self.frames)

    def close(self, *, complete: bool = True) -> Path | None:
        """Finish the file: flush, add the source's audio and the tag, sign, move into place. Returns the path
        (None when no frame was written: nothing is left behind)."""
        if self._closed:
            return self.path if self.frames else None
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
            if self._audio_out is not None:
                self._audio_out.close()
        try:
            if not self.frames:
                return None
            from ..provenance import sign_result

            # the signer reads the type from the suffix: a pid-named temporary with the final suffix
            tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.final{self.path.suffix}")
            try:
                self._finish(tmp, complete)
                sign_result(tmp, self.source.path if self.source.kind == "file" else None, None, self.run_id,
                            title=self.path.name)
                os.replace(tmp, self.path)
            finally:
                tmp.unlink(missing_ok=True)
            return self.path
        finally:
            self._video.unlink(missing_ok=True)
            if self._audio_path is not None:
                self._audio_path.unlink(missing_ok=True)

    def _finish(self, tmp: Path, complete: bool) -> None:
        """The encoded video and its audio (recorded, or a file source's own), interleaved by time, with the
        tags."""
        import av

        from ..video.audio import AudioEncoder, can_copy

        vin = av.open(str(self._video))
        recorded = self._audio_path is not None and self.audio_packets > 0
        if recorded:
            src = av.open(str(self._audio_path))
        elif self._audio_path is None and self.source.kind == "file" and self.source.has_audio:
            src = av.open(str(self.source.path))
        else:
            src = None
        out = av.open(str(tmp), "w", format=self.format)
        try:
            out.metadata.update(self.tags)
            vs = out.add_stream_from_template(vin.streams.video[0])
            video = _timed(vin.demux(vin.streams.video[0]), vs)
            audio = iter(())
            if src is not None:
                ain = src.streams.audio[0]
                if recorded:   # on the frames' timeline: from the first frame written to the end of the last
                    zero, end = self._first_t or 0.0, self.end_time
                else:
                    vstart = src.streams.video[0].start_time
                    zero = float(vstart * src.streams.video[0].time_base) if vstart is not None else 0.0
                    zero += self._first_t or 0.0   # a file played in real time may drop its first frames
                    end = None if complete else self.end_time
                if can_copy(ain, ("aac", "mp3", "alac")):
                    audio = _copied_audio(src, ain, out.add_stream_from_template(ain), zero, end,
                                          recorded or bool(self._first_t))
                else:
                    enc = AudioEncoder(out, "aac", ain, zero=zero, end=end)
                    audio = _encoded_audio(src, ain, enc)
            _interleave(out, video, audio)
        finally:
            out.close()
            vin.close()
            if src is not None:
                src.close()


def _timed(packets, stream):
    for p in packets:
        if p.dts is None and p.size == 0:
            continue
        p.stream = stream
        yield (float((p.dts if p.dts is not None else p.pts) * p.time_base), p)


def _copied_audio(src, ain, stream, zero: float, end: float | None, from_zero: bool = False):
    """(time, packet) of the packets shifted by `zero` s and up to `end` (from_zero: none before 0)."""
    shift = round(zero / ain.time_base) if ain.time_base else 0
    for p in src.demux(ain):
        if p.dts is None and p.size == 0:
            continue
        if p.pts is not None:
            p.pts -= shift
        if p.dts is not None:
            p.dts -= shift
        t = float((p.dts if p.dts is not None else p.pts) * p.time_base)
        if end is not None and t >= end:
            break
        if from_zero and t < 0:
            continue
        p.stream = stream
        yield (t, p)


def _encoded_audio(src, ain, enc):
    for packet in src.demux(ain):
        for frame in packet.decode():
            for p in enc.push(frame):
                yield (float((p.pts or 0) * p.time_base), p)
    for p in enc.flush():
        yield (float((p.pts or 0) * p.time_base), p)


def _interleave(out, a, b) -> None:
    """Mux two (time, packet) iterators in time order."""
    na, nb = next(a, None), next(b, None)
    while na is not None or nb is not None:
        if nb is None or (na is not None and na[0] <= nb[0]):
            out.mux(na[1])
            na = next(a, None)
        else:
            out.mux(nb[1])
            nb = next(b, None)


def _encoder_threads(stream, n: int, frames: int) -> None:
    if frames == 0 and n > 0:
        stream.codec_context.thread_count = int(n)


class StreamOutput:
    """H.264 over the network: MPEG-TS for udp/tcp/srt URLs, FLV for rtmp; the container carries the tag."""

    def __init__(self, url: str, source: Source, run_id: str):
        import av

        from ..provenance import container_metadata

        self.url, self.source = url, source
        fmt = "flv" if url.lower().startswith("rtmp") else "mpegts"
        self.format = fmt
        try:
            self._container = av.open(url, "w", format=fmt)
        except Exception as e:  # noqa: BLE001
            raise InputError(f"The output stream {url} could not be opened ({type(e).__name__}: {e}); check the "
                             f"address.") from None
        self._container.metadata.update(container_metadata(run_id))
        fps = max(1, round(source.fps))
        s = self._container.add_stream("libx264", rate=fps)
        s.width, s.height = source.width + source.width % 2, source.height + source.height % 2
        s.pix_fmt = "yuv420p"
        s.time_base = s.codec_context.time_base = LIVE_TIME_BASE
        s.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps)}
        self._stream = s
        self._start: float | None = None
        self._last = -1
        self.frames = 0
        self._lock = threading.Lock()      # the audio comes from another thread than the video
        self._audio = None                 # the copied audio stream, or an AudioEncoder
        self._delay = lambda: 0.0
        self._audio_dts: int | None = None
        self.audio_packets = 0

    def take_audio(self, stream, delay=None) -> bool:
        """Send `stream`'s packets (add_audio) along, `delay()` s after their capture (the video's hold)."""
        from ..video.audio import AudioEncoder, can_copy

        with self._lock:
            if can_copy(stream, STREAM_AUDIO[self.format]):
                self._audio = self._container.add_stream_from_template(stream)
            else:
                self._audio = AudioEncoder(self._container, "aac", stream)
            self._delay = delay or (lambda: 0.0)
            if self._start is None:
                self._start = time.monotonic()   # the output's clock starts now: audio may come first
        return True

    def add_audio(self, packet, t: float) -> None:
        """One packet at `t` s on the source's timeline, timed like the video: its capture plus the delay."""
        t0 = getattr(self.source, "t0", None)
        if self._audio is None or t0 is None:
            return
        at = t0 + t + self._delay() - self._start     # seconds on this output's clock
        if at < 0:
            return
        from ..video.audio import AudioEncoder

        with self._lock:
            if isinstance(self._audio, AudioEncoder):
                for frame in packet.decode():
                    frame.pts = round(at * frame.sample_rate)
                    frame.time_base = Fraction(1, frame.sample_rate)
                    at += frame.samples / frame.sample_rate
                    for p in self._audio.push(frame):
                        self._container.mux(p)
                self.audio_packets += 1
                return
            pts = round(at / packet.time_base)
            if self._audio_dts is not None and pts <= self._audio_dts:
                return
            packet.pts = packet.dts = self._audio_dts = pts
            packet.stream = self._audio
            self._container.mux(packet)
            self.audio_packets += 1

    def write(self, image: np.ndarray, sf: SourceFrame) -> None:
        with self._lock:
            now = time.monotonic()
            if self._start is None:
                self._start = now
            pts = max(self._last + 1, int((now - self._start) * 1000))
            frame = _yuv(image)
            frame.pts, frame.time_base = pts, LIVE_TIME_BASE
            self._last = pts
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames += 1

    def set_threads(self, n: int) -> None:
        """Encode on `n` threads (before the first frame)."""
        _encoder_threads(self._stream, n, self.frames)

    def close(self, *, complete: bool = True) -> None:
        from ..video.audio import AudioEncoder

        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if isinstance(self._audio, AudioEncoder):
                for packet in self._audio.flush():
                    self._container.mux(packet)
        except Exception:  # noqa: BLE001 - a receiver that went away must not hide the run's own outcome
            pass
        finally:
            self._container.close()


class VirtualCamOutput:
    """The system's virtual camera through pyvirtualcam."""

    def __init__(self, source: Source):
        try:
            import pyvirtualcam
        except ImportError:
            raise InputError("There is no virtual camera here: install pyvirtualcam (and v4l2loopback on Linux, "
                             "OBS on Windows/macOS), or give a file or stream with --out.") from None
        try:
            self._cam = pyvirtualcam.Camera(width=source.width, height=source.height, fps=source.fps)
        except Exception as e:  # noqa: BLE001
            raise InputError(f"The virtual camera could not be started ({e}); load v4l2loopback (Linux) or install "
                             f"OBS (Windows/macOS).") from None
        self.frames = 0

    def write(self, image: np.ndarray, sf: SourceFrame) -> None:
        self._cam.send(np.ascontiguousarray(image))
        self.frames += 1

    def close(self, *, complete: bool = True) -> None:
        self._cam.close()


class NoOutput:
    """`--out none`: the frames go nowhere but to `LiveSession.latest_frame()` (the browser UI's Live tab shows
    them; benchmarks)."""

    def __init__(self) -> None:
        self.frames = 0

    def write(self, image: np.ndarray, sf: SourceFrame) -> None:
        self.frames += 1

    def close(self, *, complete: bool = True) -> None:
        return None


def open_output(spec: str, source: Source, run_id: str):
    """The output for `--out` (see the module doc)."""
    spec = str(spec)
    if spec.strip().lower() in NO_OUTPUT:
        return NoOutput()
    if spec.lower() in VCAM:
        return VirtualCamOutput(source)
    if "://" in spec:
        scheme = spec.split("://", 1)[0].lower()
        if scheme not in STREAM_SCHEMES or scheme in ("http", "https", "rtsp"):
            raise OptionError(f"--out {spec}: streams go out over udp://, tcp://, srt:// (MPEG-TS) or rtmp:// (FLV).")
        return StreamOutput(spec, source, run_id)
    path = Path(spec)
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise OptionError(f"--out {spec}: write the result as .mp4 or .mov (or give a udp:// / rtmp:// stream, "
                          f"or vcam).")
    if source.kind == "file" and source.path is not None and path.resolve() == source.path.resolve():
        raise OptionError(f"--out {spec} is the source itself; give another file name.")
    return FileOutput(path, source, run_id)
