"""Image files at the byte level: the size an image declares, read from its header before any pixel is
decoded, so an image too large to decode (a 30000 x 30000 PNG is 2.7 GB as BGR) is refused with one sentence
instead of running out of memory; and the one PNG encoder every stage writes with (`encode_png`).

Every function that reads a user's image file (frames, --reference photos, report sources) reads it with
`decode_file`, which calls `check_size(data, path)` on the file's bytes before `cv2.imdecode`. PNG and JPEG headers are parsed here (the
formats frames come in); any other format OpenCV reads is left to OpenCV's own limit (2**30 pixels).
"""

from __future__ import annotations

import os
import struct

import numpy as np

from .errors import InputError

# 2**27 (134 megapixels, the limit faces/container.py uses for face files too): larger than any video frame (8K is
# 33) and most camera photos; decoding one takes ~400 MB as RGB, and extraction holds a few copies.
MAX_PIXELS = 1 << 27

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG markers that start a frame header (SOFn) and carry the image size; C4, C8 and CC are not frames.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def header_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header; None for other formats or a header that cannot be parsed. For
    a JPEG whose segments cannot be followed to a frame header, the largest size any frame header in it claims
    (a decoder skips garbage and may still find one)."""
    head = memoryview(data)  # bytes, or the uint8 array np.fromfile gives
    if bytes(head[:8]) == PNG_SIGNATURE and bytes(head[12:16]) == b"IHDR" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if bytes(head[:2]) != b"\xff\xd8":
        return None
    i, n = 2, len(head)
    while i + 4 <= n:
        if head[i] != 0xFF:
            break
        marker = head[i + 1]
        if marker == 0xFF:                        # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):                # end of image, start of scan: no frame header before it
            break
        length = struct.unpack(">H", head[i + 2:i + 4])[0]
        if marker in _SOF and i + 9 <= n:
            height, width = struct.unpack(">HH", head[i + 5:i + 9])
            return width, height
        i += 2 + length
    return _largest_frame_header(bytes(head))


def _largest_frame_header(data: bytes) -> tuple[int, int] | None:
    """The largest (width, height) any JPEG frame header (FF SOFn) anywhere in `data` declares; None if none."""
    best: tuple[int, int] | None = None
    for marker in sorted(_SOF):
        pos = data.find(bytes([0xFF, marker]))
        while 0 <= pos <= len(data) - 9:
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            if best is None or width * height > best[0] * best[1]:
                best = (width, height)
            pos = data.find(bytes([0xFF, marker]), pos + 2)
    return best


def check_size(data: bytes | np.ndarray, path: str | os.PathLike) -> None:
    """InputError naming `path` if its header declares more than MAX_PIXELS pixels."""
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        w, h = size
        raise InputError(f"{path} is {w} x {h} pixels ({w * h / 1e6:.0f} megapixels), more than the "
                         f"{MAX_PIXELS / 1e6:.0f} megapixels facedouble reads; scale it down and run again.")


def decode_file(path: str | os.PathLike, flags: int | None = None) -> np.ndarray | None:
    """The image in file `path` decoded by OpenCV with `flags` (default IMREAD_COLOR: BGR uint8, with
    grey-scale, 16-bit and alpha converted), or None when its bytes are not an image OpenCV reads (an empty
    file included); the caller says what that means for it. InputError when the file cannot be read, or when
    its header declares more than MAX_PIXELS (refused before any pixel is decoded)."""
    import cv2

    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError as e:
        raise InputError(f"Cannot read {path} ({e.strerror or e}); check that it exists and is readable.") from None
    check_size(data, path)
    return cv2.imdecode(data, cv2.IMREAD_COLOR if flags is None else flags) if data.size else None


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """A frame or photo as RGB uint8 HWC (grey-scale, 16-bit and alpha converted); InputError when the file is
    not an image OpenCV reads."""
    import cv2

    arr = decode_file(path)
    if arr is None:
        raise InputError(f"{path} is not a readable image; replace or delete it (or extract the frames again).")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """An RGB uint8 HWC image as JPEG bytes (the browser UI's pictures and previews)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("the image could not be encoded as JPEG")
    return buf.tobytes()


class RGBCache:
    """The last few images read with `read_rgb`, keyed by path, modification time and size (so a changed file is
    read again): the merge tuner and the manual editor ask for the same frame many times. Thread-safe."""

    def __init__(self, size: int = 4) -> None:
        import threading
        from collections import OrderedDict

        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, path: str | os.PathLike) -> np.ndarray:
        st = os.stat(path)
        key = (str(path), st.st_mtime_ns, st.st_size)
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        img = read_rgb(path)
        with self.lock:
            self.items[key] = img
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return img


def _fast_png():
    """fpng's encoder when installed (wheels for Linux, macOS arm64 and Windows): a lossless, standard PNG
    5-7x faster than libpng at level 1 and about 25% larger (1280x720: 13 ms against 90 ms on one busy core);
    it releases the GIL. None where it is missing: OpenCV's encoder then."""
    import cv2  # noqa: F401  first: fpng's lazy loader would otherwise put a lazy stub of cv2 in sys.modules,
    #                          which breaks when OpenCV is first used from a worker thread
    try:
        import fpng
    except ImportError:
        return None
    return fpng.from_ndarray


_FAST_PNG = _fast_png()


def encode_png(bgr: np.ndarray, compression: int = 1) -> bytes:
    """PNG bytes of a BGR, BGRA or grey uint8 image. Colour images go through fpng when it is installed
    (`compression` is then ignored); grey ones, and everything where fpng is missing, through OpenCV at zlib
    level `compression` with the run-length strategy."""
    import cv2

    if _FAST_PNG is not None and bgr.dtype == np.uint8 and bgr.ndim == 3 and bgr.shape[2] in (3, 4):
        order = [2, 1, 0] if bgr.shape[2] == 3 else [2, 1, 0, 3]  # fpng takes RGB(A)
        return _FAST_PNG(np.ascontiguousarray(bgr[..., order]))
    # zlib level 1, run-length strategy, "up" filter: on the sample media ~2x faster than level 1 with
    # adaptive filters, and 5-15% faster and 15-30% smaller than OpenCV's defaults
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, int(compression),
                                         cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                                         cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP])
    if not ok:  # pragma: no cover - OpenCV only fails on impossible shapes
        raise InputError(f"Could not encode a {bgr.shape} {bgr.dtype} image as PNG.")
    return buf.tobytes()
