"""The live run's `--audio`: a microphone (an ALSA or PulseAudio input on Linux, AVFoundation on macOS,
DirectShow on Windows) or any input PyAV opens with an audio stream (an audio or video file, a stream URL),
recorded beside the video into the output.

`open_audio(spec)`: `FORMAT:DEVICE` names a capture device of that FFmpeg input format (`alsa:hw:1,0`,
`alsa:default`, `pulse:default`, `avfoundation::0`, `dshow:audio=Microphone`); a URL with a stream scheme is a
stream; a path (anything with a `/` or a suffix) is a file; any other word is a device of this system's own
format (ALSA on Linux: `default`, `hw:1`). A device or file that cannot be opened, or has no audio, gets one
sentence (InputError) before anything is written.

`AudioInput.packets(clock)` yields `(packet, t)` in order, `t` in seconds on the video's timeline: a file's
own times from its start (it plays from the first frame); a device's or a stream's arrival on the source's
clock (`clock()` gives the `time.monotonic()` of the video's time 0: `Source.t0`), kept continuous after the
first packet by the device's own timestamps, so the audio has no gaps whatever the video drops (what a device
gives before the video's first frame is left out).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from ..errors import InputError
from .sources import OPEN_TIMEOUT, READ_TIMEOUT, STREAM_SCHEMES, open_stream

DEVICE_FORMATS = ("alsa", "pulse", "oss", "jack", "sndio", "avfoundation", "dshow", "openal")


def _system_format() -> str:
    if sys.platform == "darwin":
        return "avfoundation"
    if sys.platform.startswith("win"):
        return "dshow"
    return "alsa"


def _device_hint(fmt: str) -> str:
    return {"alsa": "list them with `arecord -L`", "pulse": "list them with `pactl list sources short`",
            "avfoundation": "list them with `ffmpeg -f avfoundation -list_devices true -i \"\"`",
            "dshow": "list them with `ffmpeg -f dshow -list_devices true -i dummy`"}.get(fmt, "check its name")


def parse_audio(spec: str) -> tuple[str, str, str | None]:
    """(kind, what to open, input format): kind is device, stream or file (see the module doc)."""
    spec = spec.strip()
    head, sep, rest = spec.partition(":")
    if sep and head.lower() in DEVICE_FORMATS:
        return "device", rest, head.lower()
    if "://" in spec and spec.split("://", 1)[0].lower() in STREAM_SCHEMES:
        return "stream", spec, None
    if "/" in spec or "\\" in spec or Path(spec).suffix:
        return "file", spec, None
    return "device", spec, _system_format()


class AudioInput:
    """An open `--audio` input; `packets(clock)` while the run lasts, then `close()`."""

    def __init__(self, spec: str, kind: str, container) -> None:
        self.spec, self.kind, self.container = spec, kind, container
        self.stream = container.streams.audio[0]

    @property
    def live(self) -> bool:
        return self.kind != "file"

    @property
    def label(self) -> str:
        return {"device": f"the audio input {self.spec}", "stream": f"the audio stream {self.spec}"}.get(
            self.kind, f"the audio file {self.spec}")

    def packets(self, clock: Callable[[], float | None], stop: Callable[[], bool] = lambda: False) \
            -> Iterator[tuple[object, float]]:
        import av

        zero: float | None = None
        try:
            for packet in self.container.demux(self.stream):
                if stop():
                    return
                if packet.pts is None or packet.size == 0 or packet.time_base is None:
                    continue
                own = float(packet.pts * packet.time_base)
                if zero is None:
                    if self.live:   # this packet's arrival on the video's clock; before the first frame: dropped
                        if clock() is None:
                            continue
                        duration = float((packet.duration or 0) * packet.time_base)
                        zero = own - (time.monotonic() - duration - clock())
                    else:
                        start = self.stream.start_time
                        zero = float(start * self.stream.time_base) if start is not None else own
                yield packet, own - zero
        except (av.error.ExitError, av.error.EOFError, av.error.OSError, TimeoutError):
            if self.live:    # the video goes on: its audio ends here, what was recorded is kept
                return
            raise InputError(f"{self.label} could not be read to its end; convert it again or leave --audio "
                             f"out.") from None
        except av.error.FFmpegError as e:
            raise InputError(f"{self.label} could not be decoded ({e}); give an audio input FFmpeg reads.") \
                from None

    def close(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - closing a broken input must not hide why it broke
            pass


def open_audio(spec: str, *, open_timeout: float | None = None, read_timeout: float | None = None) -> AudioInput:
    """Open `--audio` (see the module doc); InputError in one sentence when it cannot be used."""
    import av

    spec = str(spec).strip()
    open_timeout = OPEN_TIMEOUT if open_timeout is None else open_timeout
    read_timeout = READ_TIMEOUT if read_timeout is None else read_timeout
    kind, target, fmt = parse_audio(spec)
    if kind == "device":
        if fmt not in av.formats_available:
            raise InputError(f"--audio {spec}: this FFmpeg has no {fmt} input; give a device of "
                             f"{', '.join(f for f in DEVICE_FORMATS if f in av.formats_available) or 'no kind here'}"
                             f" (FORMAT:DEVICE), an audio file, or leave --audio out.")
        try:
            container = av.open(target or "default", format=fmt, timeout=(open_timeout, read_timeout))
        except Exception as e:  # noqa: BLE001
            raise InputError(f"There is no audio input {spec} that {fmt} can open ({type(e).__name__}); "
                             f"{_device_hint(fmt)}, or leave --audio out.") from None
    elif kind == "stream":
        container = open_stream(target, "audio stream", open_timeout, read_timeout)
    else:
        from ..video.probe import check_readable

        path = check_readable(Path(target), "Audio file")
        try:
            container = av.open(str(path))
        except Exception as e:  # noqa: BLE001
            raise InputError(f"{path} is not a file FFmpeg can read ({type(e).__name__}); give an audio or video "
                             f"file with sound.") from None
    if not container.streams.audio:
        container.close()
        raise InputError(f"--audio {spec} has no audio stream; give an input with sound, or leave --audio out.")
    return AudioInput(spec, kind, container)
