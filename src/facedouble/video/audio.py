"""Audio for `video cut` and `video build`: decode, trim to a time span with sample accuracy, re-encode;
or copy packets unchanged when the output container takes the codec as it is."""

from __future__ import annotations

from fractions import Fraction
from typing import Iterator

import av
import numpy as np

# Sample rates each encoder accepts; the first is used when the source's rate is not among them.
_RATES = {
    "aac": (48000, 44100, 96000, 88200, 64000, 32000, 24000, 22050, 16000, 12000, 11025, 8000),
    "libmp3lame": (44100, 48000, 32000, 22050, 24000, 16000, 11025, 12000, 8000),
    "libopus": (48000, 24000, 16000, 12000, 8000),
    "mp2": (48000, 44100, 32000, 24000, 22050, 16000),
}

_FRAME_SIZES = {"aac": 1024, "libmp3lame": 1152, "libopus": 960, "mp2": 1152}


def codec_id(name: str) -> int | None:
    try:
        return av.codec.Codec(name, "r").id
    except Exception:  # noqa: BLE001 - an unknown codec is simply "not copyable"
        return None


def can_copy(stream, names: tuple[str, ...]) -> bool:
    ids = {codec_id(n) for n in names}
    ids.discard(None)
    try:
        return stream.codec_context.codec.id in ids
    except Exception:  # noqa: BLE001
        return False


class AudioEncoder:
    """Feeds decoded audio frames (any format, layout, rate) into an encoder stream of `out`, keeping only
    the samples between `start` and `end` seconds of the input timeline (measured from `zero`), and
    placing them at (time - start) in the output."""

    def __init__(self, out: av.container.OutputContainer, codec: str, template, *, start: float = 0.0,
                 end: float | None = None, zero: float = 0.0, bit_rate: int | None = None):
        cc = template.codec_context
        rate = cc.sample_rate or 48000
        allowed = _RATES.get(codec)
        if allowed and rate not in allowed:
            rate = allowed[0]
        # by the channel count: a microphone's or a WAV's layout is often unnamed ("1 channels"), which encoders refuse
        layout = "mono" if cc.layout and cc.layout.nb_channels == 1 else "stereo"
        if codec == "libopus" and layout not in ("mono", "stereo"):
            layout = "stereo"
        self.stream = out.add_stream(codec, rate=rate)
        self.stream.layout = layout
        if bit_rate:
            self.stream.bit_rate = bit_rate
        fmt = self.stream.codec_context.codec.audio_formats[0].name
        self.stream.format = fmt
        self.codec = codec
        self.rate = rate
        self.layout = layout
        self.format = fmt
        self.start, self.end, self.zero = start, end, zero
        self._resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        self._fifo: av.AudioFifo | None = None
        self._next: int | None = None      # output sample index of the next sample fed to the fifo
        self.samples = 0                    # samples encoded so far

    # -- feeding ------------------------------------------------------------------------------------------
    def push(self, frame: av.AudioFrame) -> Iterator[av.Packet]:
        """Packets ready after taking `frame` (in input time)."""
        t0 = None if frame.pts is None or frame.time_base is None else float(frame.pts * frame.time_base) - self.zero
        for rf in self._resampler.resample(frame):
            if t0 is None:
                t = (self._next or 0) / self.rate + self.start
            else:
                t = t0
                t0 += rf.samples / self.rate
            yield from self._take(rf, t)

    def flush(self) -> Iterator[av.Packet]:
        for rf in self._resampler.resample(None):
            t = (self._next or 0) / self.rate + self.start
            yield from self._take(rf, t)
        if self._fifo is not None and self._fifo.samples:
            yield from self._encode(self._fifo.read(0))
        yield from self.stream.encode(None)

    # -- inside ---------------------------------------------------------------------------------------------
    def _take(self, rf: av.AudioFrame, t: float) -> Iterator[av.Packet]:
        n = rf.samples
        first = round((t - self.start) * self.rate)  # output index of this frame's first sample
        lo = max(0, -first)
        hi = n if self.end is None else min(n, round((self.end - self.start) * self.rate) - first)
        if hi <= lo:
            return
        if self._next is None:
            self._next = first + lo
        if lo or hi < n:
            arr = rf.to_ndarray()
            planar = rf.format.is_planar
            if planar:
                arr = arr[:, lo:hi]
            else:
                ch = arr.shape[1] // n if arr.ndim == 2 and arr.shape[0] == 1 else 1
                arr = arr.reshape(1, n, ch)[:, lo:hi, :].reshape(1, -1)
            cut = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=rf.format.name, layout=self.layout)
            cut.sample_rate = self.rate
            rf = cut
        rf.pts = None
        if self._fifo is None:
            self._fifo = av.AudioFifo()
        self._fifo.write(rf)
        size = self.stream.codec_context.frame_size or _FRAME_SIZES.get(self.codec, 1024)
        while self._fifo.samples >= size:
            yield from self._encode(self._fifo.read(size))

    def _encode(self, chunk: av.AudioFrame | None) -> Iterator[av.Packet]:
        if chunk is None:
            return
        chunk.pts = (self._next or 0) + self.samples
        chunk.time_base = Fraction(1, self.rate)
        chunk.sample_rate = self.rate
        self.samples += chunk.samples
        yield from self.stream.encode(chunk)
