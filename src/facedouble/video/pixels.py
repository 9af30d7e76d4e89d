"""Accurate conversion between video frames (YUV) and images (BGR or RGB uint8 HWC).

FFmpeg's scaler (swscale) with its default flags rounds YUV <-> RGB with a bias of about -1.4 levels in
each direction: measured on the sample media, a 4:2:0 round trip of a frame came back 2-3 levels darker
(40.6 dB), so extracted frames were darker than a player shows them and a built video darker again. With
accurate rounding, and full chroma interpolation when decoding, the round trip is 51.5 dB with biases under
0.3 levels. The price is decoding time: 4 ms against 0.3 ms for a 720p frame on one core. (OpenCV's I420
conversion is as fast and unbiased but repeats chroma samples instead of interpolating them: up to 23 levels
off at sharp colour edges.)
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import Interpolation

ENCODE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND
DECODE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


def frame_to_image(frame: av.VideoFrame, fmt: str = "bgr24", *, threads: int = 1) -> np.ndarray:
    """The picture of a decoded `frame` as an (H, W, 3) uint8 array in `fmt` ("bgr24" or "rgb24"), with the
    frame's own colour matrix and range. Display rotation is not applied."""
    kwargs: dict = {"threads": threads, "interpolation": DECODE_FLAGS}
    if frame.color_range in (1, 2):
        kwargs["src_color_range"] = frame.color_range
    return frame.to_ndarray(format=fmt, **kwargs)


def image_to_frame(bgr: np.ndarray, pix_fmt: str, *, colorspace: str | None = None, color_range: int | None = None,
                   threads: int = 1) -> av.VideoFrame:
    """A video frame in `pix_fmt` (e.g. "yuv420p") from a BGR uint8 image, converted with `colorspace` (an
    swscale name such as "ITU709"; None = BT.601) and `color_range` (1 limited, 2 full) with accurate rounding."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
    return frame.reformat(format=pix_fmt, dst_colorspace=colorspace, dst_color_range=color_range,
                          interpolation=ENCODE_FLAGS, threads=threads)
