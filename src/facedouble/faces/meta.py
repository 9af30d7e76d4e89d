"""Face metadata inside the face image (DESIGN.md section 3). Never pickle.

JPEG: one or more APP9 segments, each starting with IDENT, a 2-byte part number and a 2-byte part count,
then a slice of the UTF-8 JSON record. PNG: one iTXt chunk with keyword "facedouble". The record is a
versioned JSON object (`FaceRecord`). Images in and out are RGB uint8 HWC.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import InputError, MetadataError

FORMAT_VERSION = 1
IDENT = b"facedouble\x00"
APP_MARKER = 0xE9  # APP9; APP11 is C2PA's (JUMBF), APP15 the original tool's
PNG_KEYWORD = b"facedouble"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SEGMENT_PAYLOAD = 65533 - len(IDENT) - 4  # a JPEG segment holds at most 65535 bytes including its length


@dataclasses.dataclass
class FaceRecord:
    """What an aligned face image knows about itself."""

    face_type: str
    size: int                                  # side of the aligned square image in pixels
    landmarks: np.ndarray                      # (68, 2) float32, aligned-image pixels
    source_landmarks: np.ndarray               # (68, 2) float32, frame pixels
    matrix: np.ndarray                         # (2, 3) float64, frame -> aligned image
    source_filename: str                       # frame file name, e.g. "000123.png"
    source_rect: tuple[int, int, int, int]     # detector box in the frame: x0, y0, x1, y1
    source_size: tuple[int, int] = (0, 0)      # frame width, height
    face_index: int = 0                        # face number within the frame
    detector: str = ""
    landmarker: str = ""
    identity: Optional[np.ndarray] = None      # (128,) float32 identity embedding, or None
    mask_polys: list = dataclasses.field(default_factory=list)   # [[x, y], ...] polygons, aligned pixels
    extra: dict = dataclasses.field(default_factory=dict)        # pose, cached sort metrics, ...
    version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_json(cls, data: Any) -> "FaceRecord":
        if not isinstance(data, dict):
            raise MetadataError("The face record is not a JSON object.")
        version = data.get("version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise MetadataError(f"Face record version {version!r} is newer than this facedouble understands; upgrade facedouble.")
        try:
            identity = data.get("identity")
            return cls(
                face_type=str(data["face_type"]),
                size=int(data["size"]),
                landmarks=_array(data["landmarks"], (68, 2), np.float32),
                source_landmarks=_array(data["source_landmarks"], (68, 2), np.float32),
                matrix=_array(data["matrix"], (2, 3), np.float64),
                source_filename=str(data["source_filename"]),
                source_rect=tuple(int(v) for v in data["source_rect"]),  # type: ignore[arg-type]
                source_size=tuple(int(v) for v in data.get("source_size", (0, 0))),  # type: ignore[arg-type]
                face_index=int(data.get("face_index", 0)),
                detector=str(data.get("detector", "")),
                landmarker=str(data.get("landmarker", "")),
                identity=None if identity is None else _array(identity, (128,), np.float32),
                mask_polys=list(data.get("mask_polys", [])),
                extra=dict(data.get("extra", {})),
                version=FORMAT_VERSION,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise MetadataError(f"The face record is incomplete or malformed ({e}).") from None

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> "FaceRecord":
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise MetadataError(f"The face record is not valid JSON ({e}).") from None
        return cls.from_json(data)


def _array(value: Any, shape: tuple[int, ...], dtype) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise ValueError(f"expected finite array of shape {shape}, got {arr.shape}")
    return arr


# -- JPEG -----------------------------------------------------------------------------------------

def _jpeg_segments(data: bytes):
    """Yield (marker, start, end) of each segment before the scan data; end excludes the next marker."""
    if data[:2] != b"\xff\xd8":
        raise MetadataError("Not a JPEG file (no SOI marker).")
    pos = 2
    n = len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            raise MetadataError("Corrupt JPEG: expected a marker.")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2 or pos + 2 + length > n:
            raise MetadataError("Corrupt JPEG: a segment runs past the end of the file.")
        yield marker, pos, pos + 2 + length
        if marker == 0xDA:  # start of scan: metadata ends here
            return
        pos += 2 + length


def jpeg_record_bytes(data: bytes) -> bytes | None:
    parts: dict[int, bytes] = {}
    count = None
    for marker, start, end in _jpeg_segments(data):
        body = data[start + 4:end]
        if marker == APP_MARKER and body.startswith(IDENT):
            index, total = struct.unpack(">HH", body[len(IDENT):len(IDENT) + 4])
            if count is not None and total != count:
                raise MetadataError("Corrupt face record: its parts disagree on their count.")
            count = total
            parts[index] = body[len(IDENT) + 4:]
    if count is None:
        return None
    if sorted(parts) != list(range(count)):
        raise MetadataError("Corrupt face record: some of its parts are missing.")
    return b"".join(parts[i] for i in range(count))


def jpeg_with_record(data: bytes, record: bytes | None) -> bytes:
    """The JPEG with our segments replaced by `record` (or removed when None), pixels untouched."""
    kept: list[bytes] = []
    insert_at = 0  # after a leading JFIF (APP0) / EXIF (APP1)
    head_end = 2
    for marker, start, end in _jpeg_segments(data):
        if marker == 0xDA:
            head_end = start
            break
        head_end = end
        if marker == APP_MARKER and data[start + 4:end].startswith(IDENT):
            continue
        kept.append(data[start:end])
        if marker in (0xE0, 0xE1) and insert_at == len(kept) - 1:
            insert_at = len(kept)
    ours = []
    if record is not None:
        chunks = [record[i:i + _SEGMENT_PAYLOAD] for i in range(0, len(record), _SEGMENT_PAYLOAD)] or [b""]
        if len(chunks) > 0xFFFF:
            raise MetadataError("The face record is too large to store in a JPEG.")
        for i, chunk in enumerate(chunks):
            body = IDENT + struct.pack(">HH", i, len(chunks)) + chunk
            ours.append(bytes([0xFF, APP_MARKER]) + struct.pack(">H", len(body) + 2) + body)
    return data[:2] + b"".join(kept[:insert_at] + ours + kept[insert_at:]) + data[head_end:]


# -- PNG ------------------------------------------------------------------------------------------

def _png_chunks(data: bytes):
    if not data.startswith(PNG_SIGNATURE):
        raise MetadataError("Not a PNG file (bad signature).")
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise MetadataError("Corrupt PNG: a chunk runs past the end of the file.")
        yield ctype, pos, end
        if ctype == b"IEND":
            return
        pos = end


def png_record_bytes(data: bytes) -> bytes | None:
    for ctype, start, end in _png_chunks(data):
        if ctype != b"iTXt":
            continue
        body = data[start + 8:end - 4]
        keyword, _, rest = body.partition(b"\x00")
        if keyword != PNG_KEYWORD:
            continue
        if len(rest) < 2:
            raise MetadataError("Corrupt face record chunk.")
        compressed, _method = rest[0], rest[1]
        rest = rest[2:]
        _lang, _, rest = rest.partition(b"\x00")
        _translated, _, text = rest.partition(b"\x00")
        if compressed:
            try:
                text = zlib.decompress(text)
            except zlib.error as e:
                raise MetadataError(f"Corrupt face record chunk ({e}).") from None
        return text
    return None


def png_with_record(data: bytes, record: bytes | None) -> bytes:
    out = [PNG_SIGNATURE]
    for ctype, start, end in _png_chunks(data):
        chunk = data[start:end]
        if ctype == b"iTXt" and data[start + 8:end - 4].startswith(PNG_KEYWORD + b"\x00"):
            continue
        if ctype == b"IEND" and record is not None:
            body = PNG_KEYWORD + b"\x00" + b"\x00\x00" + b"\x00" + b"\x00" + record
            out.append(struct.pack(">I", len(body)) + b"iTXt" + body + struct.pack(">I", zlib.crc32(b"iTXt" + body) & 0xFFFFFFFF))
        out.append(chunk)
    return b"".join(out)


# -- files ----------------------------------------------------------------------------------------

def record_bytes(data: bytes) -> bytes | None:
    if data.startswith(PNG_SIGNATURE):
        return png_record_bytes(data)
    if data[:2] == b"\xff\xd8":
        return jpeg_record_bytes(data)
    raise MetadataError("Not a JPEG or PNG image.")


def with_record(data: bytes, record: FaceRecord | None) -> bytes:
    raw = None if record is None else record.to_bytes()
    if data.startswith(PNG_SIGNATURE):
        return png_with_record(data, raw)
    if data[:2] == b"\xff\xd8":
        return jpeg_with_record(data, raw)
    raise MetadataError("Not a JPEG or PNG image.")


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"Face image {path} does not exist.") from None
    except OSError as e:
        raise InputError(f"Cannot read face image {path} ({e.strerror}).") from None


def read_record(path: str | os.PathLike) -> FaceRecord | None:
    """The record inside a face image, None if it has none; MetadataError if it is corrupt."""
    try:
        raw = record_bytes(_read_bytes(Path(path)))
    except MetadataError as e:
        raise MetadataError(f"{path}: {e.message}") from None
    if raw is None:
        return None
    try:
        return FaceRecord.from_bytes(raw)
    except MetadataError as e:
        raise MetadataError(f"{path}: {e.message}") from None


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """RGB uint8 HWC from encoded bytes (grey-scale, 16-bit and alpha are converted)."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise InputError(f"{name} is not a readable image; delete or replace it.")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def read_face(path: str | os.PathLike) -> tuple[np.ndarray, FaceRecord]:
    """Image (RGB uint8 HWC) and record of an aligned face; MetadataError if it has no record."""
    path = Path(path)
    data = _read_bytes(path)
    try:
        raw = record_bytes(data)
    except MetadataError as e:
        raise MetadataError(f"{path}: {e.message}") from None
    if raw is None:
        raise MetadataError(f"{path} has no facedouble face record; extract faces with `facedouble extract` "
                            "or import them with `facedouble util import-dfl`.")
    try:
        record = FaceRecord.from_bytes(raw)
    except MetadataError as e:
        raise MetadataError(f"{path}: {e.message}") from None
    return decode_image(data, str(path)), record


def encode_image(image: np.ndarray, suffix: str, jpeg_quality: int = 95, png_compression: int = 3) -> bytes:
    import cv2

    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 and image.shape[2] == 3 else image
    if suffix.lower() in (".jpg", ".jpeg"):
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)])
    if not ok:
        raise InputError(f"Could not encode an image as {suffix}.")
    return buf.tobytes()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder and rename, so no half file is ever visible."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_face(path: str | os.PathLike, image: np.ndarray, record: FaceRecord, jpeg_quality: int = 95) -> Path:
    """Encode an aligned face (RGB uint8) with its record inside; atomic."""
    path = Path(path)
    data = with_record(encode_image(image, path.suffix, jpeg_quality), record)
    atomic_write_bytes(path, data)
    return path


def update_record(path: str | os.PathLike, record: FaceRecord | None) -> None:
    """Replace (or with None, remove) the record of a face image without re-encoding its pixels."""
    path = Path(path)
    atomic_write_bytes(path, with_record(_read_bytes(path), record))
