"""The size of an image file, read from its header before any pixel is decoded, so an image too large to
decode (a 30000 x 30000 PNG is 2.7 GB as BGR) is refused with one sentence instead of running out of memory.

Every function that reads a user's image file (frames, --reference photos, report sources) calls
`check_size(data, path)` on the file's bytes before `cv2.imdecode`. PNG and JPEG headers are parsed here (the
formats frames come in); any other format OpenCV reads is left to OpenCV's own limit (2**30 pixels).
"""

from __future__ import annotations

import os
import struct

import numpy as np

from .errors import InputError

# 2**27 (134 megapixels, the limit faces/meta.py uses for face files too): larger than any video frame (8K is
# 33) and most camera photos; decoding one takes ~400 MB as RGB, and extraction holds a few copies.
MAX_PIXELS = 1 << 27

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG markers that start a frame header (SOFn) and carry the image size; C4, C8 and CC are not frames.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def header_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header; None for other formats or a header that cannot be parsed."""
    head = memoryview(data)  # bytes, or the uint8 array np.fromfile gives
    if bytes(head[:8]) == _PNG_SIGNATURE and bytes(head[12:16]) == b"IHDR" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if bytes(head[:2]) != b"\xff\xd8":
        return None
    i, n = 2, len(head)
    while i + 4 <= n:
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:                        # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):                # end of image, start of scan: no frame header before it
            return None
        length = struct.unpack(">H", head[i + 2:i + 4])[0]
        if marker in _SOF and i + 9 <= n:
            height, width = struct.unpack(">HH", head[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def check_size(data: bytes | np.ndarray, path: str | os.PathLike) -> None:
    """InputError naming `path` if its header declares more than MAX_PIXELS pixels."""
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        w, h = size
        raise InputError(f"{path} is {w} x {h} pixels ({w * h / 1e6:.0f} megapixels), more than the "
                         f"{MAX_PIXELS / 1e6:.0f} megapixels facedouble reads; scale it down and run again.")
