"""What the invisible watermark must survive, as functions: an H.264 encode and decode at a CRF, and a JPEG at a
quality. `benchmarks/provenance.py` measures the mark against these and the tests hold the figures with the same
functions, so the figure and its check cannot drift apart. Images are RGB uint8 HWC."""

from __future__ import annotations

import io

import numpy as np


def h264_round_trip(images: list[np.ndarray], crf: int = 28, *, fps: int = 30, preset: str = "medium",
                    tune: str | None = None) -> list[np.ndarray]:
    """The frames through libx264 (yuv420p, `crf`, `preset`, optional `tune`) in memory and decoded again."""
    import av

    h, w = images[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": str(crf), "preset": preset, **({"tune": tune} if tune else {})}
        for f in images:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    buf.seek(0)
    with av.open(buf) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def jpeg_round_trip(image: np.ndarray, quality: int = 50) -> np.ndarray:
    """The image encoded as JPEG at `quality` and decoded again."""
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("the image could not be encoded as JPEG")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
