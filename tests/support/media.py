"""Frames of the sample media, decoded with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def decode(path: Path, limit: int | None = None, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """RGB uint8 frames of a video (optionally only the first `limit`, resized to `size` = (w, h))."""
    import av
    import cv2

    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            img = frame.to_ndarray(format="rgb24")
            if size is not None and (img.shape[1], img.shape[0]) != size:
                img = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
            out.append(img)
            if limit is not None and len(out) >= limit:
                break
    return out


def decode_picks(path: Path, picks: list[int], size: tuple[int, int] = (640, 360)) -> list[np.ndarray]:
    """RGB uint8 frames number `picks` (from 0) of a video, resized (INTER_AREA) to `size` = (w, h)."""
    import av
    import cv2

    out = []
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in picks:
                img = frame.to_ndarray(format="rgb24")
                if (img.shape[1], img.shape[0]) != size:
                    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                out.append(img)
            if i >= max(picks):
                break
    return out


def frames(video: Path, every: int, limit: int | None = None):
    """(frame number from 1, RGB frame) of every `every`-th frame."""
    import av

    with av.open(str(video)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if limit is not None and i >= limit:
                break
            if i % every == 0:
                yield i + 1, f.to_ndarray(format="rgb24")


def video_info(path: Path) -> dict:
    """{'frames': RGB frames, 'fps': average rate, 'audio': seconds of audio packets (0.0 without audio)}."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(v)]
    with av.open(str(path)) as c:
        a = c.streams.audio[0] if c.streams.audio else None
        audio = sum(p.duration or 0 for p in c.demux(a) if p.size) * float(a.time_base) if a is not None else 0.0
        v = c.streams.video[0]
        return {"frames": frames, "fps": float(v.average_rate), "audio": audio}
