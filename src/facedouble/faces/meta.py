"""Face metadata inside the face image (DESIGN.md section 3). Never pickle.

JPEG: one or more APP9 segments, each starting with IDENT, a 2-byte part number and a 2-byte part count,
then a slice of the UTF-8 JSON record. PNG: one iTXt chunk with keyword "facedouble". The record is a
versioned JSON object (`FaceRecord`). Images in and out are RGB uint8 HWC.

Faces made by the original tool (a pickled dict in JPEG APP15) are imported with `import_dfl`, which reads
the pickle with `RestrictedUnpickler` (numpy arrays and plain values only); nothing else here unpickles.

Every reader here takes untrusted bytes: it returns a valid record (or None where it says so) or raises
MetadataError, never another exception, and never inflates or allocates without a bound
(tests/test_reliability_security.py fuzzes them). Errors of the bytes-level readers are clauses ("a JPEG
segment runs past the end of the file"); `read_record` and `read_face` make them one sentence naming the file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..choices import FaceType, values
from ..errors import InputError, MetadataError
from ..imagefile import encode_png, header_size
from ..files import atomic_write_bytes

FORMAT_VERSION = 2  # 2: XSeg labels as explicit include (mask_polys) and exclude_polys, applied xseg_mask
IDENT = b"facedouble\x00"
APP_MARKER = 0xE9  # APP9; APP11 is C2PA's (JUMBF), APP15 the original tool's
PNG_KEYWORD = b"facedouble"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SEGMENT_PAYLOAD = 65533 - len(IDENT) - 4  # a JPEG segment holds at most 65535 bytes including its length
MAX_RECORD_BYTES = 64 * 1024 * 1024     # a compressed PNG record inflating past this is refused (a zip bomb)
MAX_IMAGE_PIXELS = 1 << 25              # face images declaring more pixels are refused before decoding (~33 MP;
                                        # a progressive JPEG decoder needs ~12 bytes a pixel)
MAX_COORDINATE = 1e9                    # |x|, |y| of a stored point or rectangle
MAX_PICKLED_ITEMS = 4_000_000           # values in DFL metadata once shared references are expanded
FACE_TYPES = frozenset(values(FaceType))
_UPGRADE = "upgrade facedouble"         # the advice of a record too new; other damage: delete or re-extract


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
    mask_polys: list = dataclasses.field(default_factory=list)   # XSeg include polygons [[[x, y], ...], ...], aligned px
    exclude_polys: list = dataclasses.field(default_factory=list)  # XSeg exclude polygons, same form
    xseg_mask: Optional[dict] = None           # applied XSeg mask: {"png": base64 grey PNG, "model": model id}
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
        """The record of a parsed JSON object, every field checked; MetadataError says which one is wrong."""
        if not isinstance(data, dict):
            raise MetadataError("the face record is not a JSON object")
        version = data.get("version", 0)
        if not _is_int(version):
            raise MetadataError("the face record's version is not a whole number")
        if version > FORMAT_VERSION:
            raise MetadataError(f"the face record has version {version}, newer than this facedouble understands; "
                                f"{_UPGRADE}")
        try:
            identity = data.get("identity")
            return cls(
                face_type=_face_type(_required(data, "face_type")),
                size=_whole(_required(data, "size"), "size", low=1, high=1 << 16),
                landmarks=_array(_required(data, "landmarks"), (68, 2), np.float32, "landmarks"),
                source_landmarks=_array(_required(data, "source_landmarks"), (68, 2), np.float32, "source_landmarks"),
                matrix=_matrix(_required(data, "matrix")),
                source_filename=_file_name(_required(data, "source_filename")),
                source_rect=_ints(_required(data, "source_rect"), 4, "source_rect"),  # type: ignore[arg-type]
                source_size=_ints(data.get("source_size", (0, 0)), 2, "source_size", low=0),  # type: ignore[arg-type]
                face_index=_whole(data.get("face_index", 0), "face_index", low=0),
                detector=_text(data.get("detector", ""), "detector"),
                landmarker=_text(data.get("landmarker", ""), "landmarker"),
                identity=None if identity is None else _array(identity, (128,), np.float32, "identity"),
                mask_polys=_polygons(data.get("mask_polys", []), "mask_polys"),
                exclude_polys=_polygons(data.get("exclude_polys", []), "exclude_polys") + _v1_exclude(data),
                xseg_mask=_xseg_mask(data.get("xseg_mask")),
                extra=_without(_object(data.get("extra", {}), "extra"), "mask_exclude_polys"),
                version=FORMAT_VERSION,
            )
        except RecursionError:
            raise MetadataError("the face record is nested too deeply") from None

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> "FaceRecord":
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise MetadataError(f"the face record is not valid JSON ({_short(e)})") from None
        except RecursionError:
            raise MetadataError("the face record is not valid JSON (nested too deeply)") from None
        return cls.from_json(data)


# -- checks of the record's fields (each raises MetadataError naming the field) -----------------------------

def _short(value: Any, n: int = 80) -> str:
    text = str(value)
    return text if len(text) <= n else text[:n] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """An int or float (not a bool) that is finite and within MAX_COORDINATE."""
    if _is_int(v):
        return abs(v) <= MAX_COORDINATE
    return isinstance(v, float) and math.isfinite(v) and abs(v) <= MAX_COORDINATE


def _required(data: dict, key: str) -> Any:
    if key not in data:
        raise MetadataError(f"the face record has no {key}")
    return data[key]


def _face_type(v: Any) -> str:
    if not isinstance(v, str) or v not in FACE_TYPES:
        raise MetadataError(f"the face record's face_type is not one of {', '.join(sorted(FACE_TYPES))}")
    return v


def _whole(v: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    if not (_is_int(v) or (isinstance(v, float) and v.is_integer())) or abs(v) > MAX_COORDINATE \
            or (low is not None and v < low) or (high is not None and v > high):
        bounds = f" from {low}" if low is not None else ""
        bounds += f" to {high}" if high is not None else ""
        raise MetadataError(f"the face record's {name} is not a whole number{bounds}")
    return int(v)


def _ints(v: Any, n: int, name: str, low: int | None = None) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)) or len(v) != n or not all(_is_number(x) for x in v) \
            or (low is not None and any(x < low for x in v)):
        raise MetadataError(f"the face record's {name} is not {n} numbers"
                            + (f" of at least {low}" if low is not None else ""))
    return tuple(int(x) for x in v)


def _text(v: Any, name: str) -> str:
    if not isinstance(v, str):
        raise MetadataError(f"the face record's {name} is not text")
    return v


def _file_name(v: Any) -> str:
    """A frame's file name: no folders, so it can never point outside the frames folder."""
    if not isinstance(v, str) or "/" in v or "\\" in v or "\x00" in v or v in (".", ".."):
        raise MetadataError("the face record's source_filename is not a plain file name")
    return v


def _polygons(v: Any, name: str) -> list:
    """[[[x, y], ...], ...] with finite numbers, kept as given (empty polygons are allowed)."""
    ok = isinstance(v, list) and all(
        isinstance(poly, list) and all(isinstance(pt, list) and len(pt) == 2 and _is_number(pt[0]) and _is_number(pt[1])
                                       for pt in poly) for poly in v)
    if not ok:
        raise MetadataError(f"the face record's {name} is not a list of polygons of (x, y) numbers")
    return v


def _v1_exclude(data: dict) -> list:
    """Exclude polygons that version 1 records (and the importer of the original tool) kept in
    extra["mask_exclude_polys"]; they move to the exclude_polys field."""
    extra = data.get("extra")
    if not isinstance(extra, dict) or "mask_exclude_polys" not in extra:
        return []
    return list(_polygons(extra["mask_exclude_polys"], "extra.mask_exclude_polys"))


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key} if key in d else d


MAX_MASK_SIDE = 1024  # an applied XSeg mask PNG larger than this is refused


def _xseg_mask(v: Any) -> Optional[dict]:
    """{"png": base64 text of a grey PNG, "model": text} or None; the PNG itself is decoded only when used
    (`xseg_mask_array`), its header is checked here."""
    if v is None:
        return None
    if not isinstance(v, dict) or not isinstance(v.get("png"), str) or not isinstance(v.get("model", ""), str):
        raise MetadataError("the face record's xseg_mask is not an object with png and model text")
    import base64
    import binascii

    try:
        head = base64.b64decode(v["png"][:64], validate=True)
    except (binascii.Error, ValueError):
        raise MetadataError("the face record's xseg_mask is not base64 text") from None
    w, h = (header_size(head) or (0, 0)) if head.startswith(PNG_SIGNATURE) else (0, 0)
    if not (0 < w <= MAX_MASK_SIDE and 0 < h <= MAX_MASK_SIDE):
        raise MetadataError(f"the face record's xseg_mask is not a PNG of at most {MAX_MASK_SIDE} px a side")
    return {"png": v["png"], "model": v.get("model", "")}


def xseg_mask_field(mask: np.ndarray, model: str) -> dict:
    """The record's xseg_mask value for an (H, W) float32 [0, 1] mask (stored as an 8-bit grey PNG)."""
    import base64

    m = np.clip(np.asarray(mask, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return {"png": base64.b64encode(encode_png(m, 6)).decode("ascii"), "model": str(model)}


def xseg_mask_array(record: "FaceRecord") -> np.ndarray | None:
    """The applied XSeg mask of a record as (H, W) float32 [0, 1] (its stored size), None when it has none;
    MetadataError when the stored PNG cannot be decoded."""
    import base64
    import binascii

    import cv2

    if record.xseg_mask is None:
        return None
    try:
        data = base64.b64decode(record.xseg_mask["png"], validate=True)
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise MetadataError("the face record's xseg_mask is not base64 text") from None
    w, h = (header_size(data) or (0, 0)) if data.startswith(PNG_SIGNATURE) else (0, 0)
    if not (0 < w <= MAX_MASK_SIDE and 0 < h <= MAX_MASK_SIDE):
        raise MetadataError(f"the face record's xseg_mask is not a PNG of at most {MAX_MASK_SIDE} px a side")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if arr is None:
        raise MetadataError("the face record's xseg_mask PNG cannot be decoded")
    return arr.astype(np.float32) / 255.0


def _object(v: Any, name: str) -> dict:
    if not isinstance(v, dict):
        raise MetadataError(f"the face record's {name} is not a JSON object")
    return v


def _array(value: Any, shape: tuple[int, ...], dtype, name: str = "array") -> np.ndarray:
    try:
        if isinstance(value, (str, bytes, dict)):
            raise TypeError
        with np.errstate(all="ignore"):
            arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError, RecursionError, MemoryError):
        arr = None
    if arr is None or arr.shape != shape or not np.all(np.isfinite(arr)):
        raise MetadataError(f"the face record's {name} is not {' x '.join(map(str, shape))} finite numbers")
    return arr


def _matrix(value: Any) -> np.ndarray:
    m = _array(value, (2, 3), np.float64, "matrix")
    if abs(np.linalg.det(m[:, :2])) < 1e-12:
        raise MetadataError("the face record's matrix cannot be inverted")
    return m


# -- JPEG -----------------------------------------------------------------------------------------

def _jpeg_segments(data: bytes):
    """Yield (marker, start, end) of each segment before the scan data; end excludes the next marker."""
    if data[:2] != b"\xff\xd8":
        raise MetadataError("it is not a JPEG file (no SOI marker)")
    pos = 2
    n = len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            raise MetadataError(f"the JPEG is corrupt (no marker at byte {pos})")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2 or pos + 2 + length > n:
            raise MetadataError("the JPEG is corrupt (a segment runs past the end of the file)")
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
            if len(body) < len(IDENT) + 4:
                raise MetadataError("the face record is corrupt (a part's header is cut short)")
            index, total = struct.unpack(">HH", body[len(IDENT):len(IDENT) + 4])
            if count is not None and total != count:
                raise MetadataError("the face record is corrupt (its parts disagree on their count)")
            if index in parts:
                raise MetadataError("the face record is corrupt (a part appears twice)")
            count = total
            parts[index] = body[len(IDENT) + 4:]
    if count is None:
        return None
    if sorted(parts) != list(range(count)):
        raise MetadataError("the face record is corrupt (some of its parts are missing)")
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
            raise MetadataError("the face record is too large to store in a JPEG")
        for i, chunk in enumerate(chunks):
            body = IDENT + struct.pack(">HH", i, len(chunks)) + chunk
            ours.append(bytes([0xFF, APP_MARKER]) + struct.pack(">H", len(body) + 2) + body)
    return data[:2] + b"".join(kept[:insert_at] + ours + kept[insert_at:]) + data[head_end:]


# -- PNG ------------------------------------------------------------------------------------------

def _png_chunks(data: bytes):
    if not data.startswith(PNG_SIGNATURE):
        raise MetadataError("it is not a PNG file (bad signature)")
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise MetadataError("the PNG is corrupt (a chunk runs past the end of the file)")
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
            raise MetadataError("the face record chunk is corrupt (cut short)")
        compressed, _method = rest[0], rest[1]
        rest = rest[2:]
        _lang, _, rest = rest.partition(b"\x00")
        _translated, _, text = rest.partition(b"\x00")
        return _inflate(text) if compressed else text
    return None


def _inflate(data: bytes) -> bytes:
    """zlib data inflated to at most MAX_RECORD_BYTES (a small chunk may claim gigabytes)."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, MAX_RECORD_BYTES + 1)
    except zlib.error as e:
        raise MetadataError(f"the face record chunk is corrupt ({e})") from None
    if len(out) > MAX_RECORD_BYTES:
        raise MetadataError(f"the face record chunk inflates to more than {MAX_RECORD_BYTES >> 20} MB, too large "
                            "for a face record")
    if not d.eof:
        raise MetadataError("the face record chunk is corrupt (its compressed text is cut short)")
    return out


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
    """The raw record (JSON bytes) inside a JPEG or PNG, None if it has none; MetadataError if corrupt."""
    if data.startswith(PNG_SIGNATURE):
        return png_record_bytes(data)
    if data[:2] == b"\xff\xd8":
        return jpeg_record_bytes(data)
    raise MetadataError("it is not a JPEG or PNG image")


def with_record(data: bytes, record: FaceRecord | None) -> bytes:
    raw = None if record is None else record.to_bytes()
    if data.startswith(PNG_SIGNATURE):
        return png_with_record(data, raw)
    if data[:2] == b"\xff\xd8":
        return jpeg_with_record(data, raw)
    raise MetadataError("it is not a JPEG or PNG image")


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"Face image {path} does not exist.") from None
    except OSError as e:
        raise InputError(f"Cannot read face image {path} ({e.strerror}).") from None


def _in_file(path: str | os.PathLike, e: MetadataError) -> MetadataError:
    """A reader's clause made one sentence that names the file and says what to do."""
    reason = e.message.rstrip(".")
    todo = "" if reason.endswith(_UPGRADE) else "; delete the image or extract the face again"
    return MetadataError(f"Cannot read the face record of {path}: {reason}{todo}.")


def read_record(path: str | os.PathLike) -> FaceRecord | None:
    """The record inside a face image, None if it has none; MetadataError if it is corrupt."""
    try:
        raw = record_bytes(_read_bytes(Path(path)))
        return None if raw is None else FaceRecord.from_bytes(raw)
    except MetadataError as e:
        raise _in_file(path, e) from None


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """RGB uint8 HWC from encoded PNG or JPEG bytes (grey-scale, 16-bit and alpha are converted); InputError
    for anything else, or for a header claiming more than MAX_IMAGE_PIXELS (which a decoder would allocate)."""
    import cv2

    if not (data.startswith(PNG_SIGNATURE) or data[:2] == b"\xff\xd8"):
        raise InputError(f"{name} is not a PNG or JPEG image; delete or replace it.")
    w, h = image_dimensions(data)
    if w * h > MAX_IMAGE_PIXELS:
        raise InputError(f"{name} claims to be {w} x {h} pixels, more than facedouble reads; delete or replace it.")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise InputError(f"{name} is not a readable image; delete or replace it.")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def image_dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) that a PNG or JPEG header declares, (0, 0) when it is neither (`imagefile.header_size`)."""
    return header_size(data) or (0, 0)


def read_face(path: str | os.PathLike) -> tuple[np.ndarray, FaceRecord]:
    """Image (RGB uint8 HWC) and record of an aligned face; MetadataError if it has no record or a corrupt
    one, InputError if the pixels cannot be decoded."""
    path = Path(path)
    data = _read_bytes(path)
    try:
        raw = record_bytes(data)
        record = None if raw is None else FaceRecord.from_bytes(raw)
    except MetadataError as e:
        raise _in_file(path, e) from None
    if record is None:
        raise MetadataError(f"{path} has no facedouble face record; extract faces with `facedouble extract` "
                            "or import them with `facedouble util import-dfl`.")
    return decode_image(data, str(path)), record


def encode_image(image: np.ndarray, suffix: str, jpeg_quality: int = 95, png_compression: int = 3) -> bytes:
    import cv2

    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 and image.shape[2] == 3 else image
    if suffix.lower() not in (".jpg", ".jpeg"):
        return encode_png(bgr, png_compression)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise InputError(f"Could not encode an image as {suffix}.")
    return buf.tobytes()



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


# -- faces extracted by the original tool (DFL) ------------------------------------------------------------
# A DFL face is a JPEG whose APP15 segment holds a pickled dict: face_type ('half_face', 'mid_full',
# 'full_face', 'whole_face', 'head'), landmarks (68x2, face pixels), source_filename, source_rect,
# source_landmarks (68x2, frame pixels), image_to_face_mat (2x3, frame -> face), and optionally
# seg_ie_polys, xseg_mask, eyebrows_expand_mod. A pickle can run code, so it is read with an unpickler that
# only rebuilds numpy arrays, dtypes and scalars (and plain Python values, which need no class lookup).

DFL_APP_MARKER = 0xEF  # APP15
DFL_FACE_TYPES = {"half_face": "half", "mid_full": "mid-full", "full_face": "full", "whole_face": "whole-face",
                  "head": "head"}


@functools.lru_cache(maxsize=1)
def _numpy_globals() -> dict[tuple[str, str], Any]:
    import numpy

    core = getattr(numpy, "_core", None)
    multiarray = getattr(core, "multiarray", None) if core is not None else None
    numeric = getattr(core, "numeric", None) if core is not None else None
    if multiarray is None:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]

    allowed = {("numpy", "ndarray"): numpy.ndarray, ("numpy", "dtype"): numpy.dtype,
               ("_codecs", "encode"): _latin1_encode}  # protocol 2 writes bytes as _codecs.encode(str, 'latin1')
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = numeric._frombuffer
    return allowed


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """What protocol 2 pickles of bytes call (`_codecs.encode(str, 'latin1')`), and nothing else of codecs."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise MetadataError("refused a codec call other than latin1 text to bytes in the pickled metadata")
    return text.encode("latin-1")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain values and numpy arrays only; any other class or function raises MetadataError
    before it is looked up, so nothing in the pickle can run."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _numpy_globals()
        try:
            return allowed[(module, name)]
        except KeyError:
            raise MetadataError(f"refused to load {module}.{name} from the pickled metadata (only numpy arrays "
                                "are allowed)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise MetadataError("refused a persistent reference in the pickled metadata")


def restricted_loads(data: bytes) -> Any:
    """Unpickle untrusted bytes with RestrictedUnpickler; MetadataError if refused or corrupt, or if the value
    would expand to more than MAX_PICKLED_ITEMS values (see `_expanded_size`)."""
    import io

    try:
        value = RestrictedUnpickler(io.BytesIO(data)).load()
    except MetadataError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt pickle can raise nearly anything
        raise MetadataError(f"corrupt pickled metadata ({type(e).__name__}: {_short(e)})") from None
    if _expanded_size(value, MAX_PICKLED_ITEMS) > MAX_PICKLED_ITEMS:
        raise MetadataError(f"refused pickled metadata that expands to more than {MAX_PICKLED_ITEMS:,} values")
    return value


def _children(v: Any) -> list:
    if isinstance(v, dict):
        return [*v.keys(), *v.values()]
    if isinstance(v, (list, tuple, set, frozenset)):
        return list(v)
    if isinstance(v, np.ndarray) and v.dtype.hasobject:
        return list(v.ravel())
    return []


def _expanded_size(value: Any, limit: int) -> int:
    """How many values `value` holds once shared references are expanded, numpy arrays counting their
    elements (capped just past `limit`). A few hundred bytes of pickle can otherwise stand for billions of
    values: a list holding the same list twice, 40 levels deep, or an array of zero-byte items with any
    shape. MetadataError for a value that contains itself."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        v, finished = stack.pop()
        key = id(v)
        if finished:
            on_path.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _children(v)) + (v.size if isinstance(v, np.ndarray) else 0)
            sizes[key] = min(total, limit + 1)
            if total > limit:
                return limit + 1
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise MetadataError("refused pickled metadata that contains itself")
        on_path.add(key)
        stack.append((v, True))
        stack.extend((c, False) for c in _children(v))
    return sizes[id(value)]


def dfl_metadata(data: bytes) -> dict | None:
    """The dict in the APP15 segment of a DFL face JPEG, None if there is none."""
    if data[:2] != b"\xff\xd8":
        raise MetadataError("it is not a JPEG file (no SOI marker)")
    for marker, start, end in _jpeg_segments(data):
        if marker == DFL_APP_MARKER:
            value = restricted_loads(data[start + 4:end])
            if not isinstance(value, dict):
                raise MetadataError("the APP15 metadata is not a dict")
            return value
    return None


def _jpeg_without_marker(data: bytes, marker_to_drop: int) -> bytes:
    out, head_end = [], 2
    for marker, start, end in _jpeg_segments(data):
        if marker == 0xDA:
            head_end = start
            break
        head_end = end
        if marker != marker_to_drop:
            out.append(data[start:end])
    return data[:2] + b"".join(out) + data[head_end:]


def _points(value: Any, name: str) -> np.ndarray:
    try:
        if isinstance(value, (str, bytes, dict)):
            raise TypeError
        with np.errstate(all="ignore"):
            arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError, OverflowError, RecursionError, MemoryError):
        raise MetadataError(f"{name} are not (x, y) numbers") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.all(np.isfinite(arr)) \
            or np.abs(arr).max(initial=0) > MAX_COORDINATE:
        raise MetadataError(f"{name} are not a list of finite (x, y) points")
    return arr


def _dfl_polys(value: Any) -> tuple[list, list]:
    """(include, exclude) polygons from DFL's seg_ie_polys: {'polys': [{'type': 1|0, 'pts': Nx2}, ...]} or
    the older list of (type, pts). Polygons that cannot be read are left out."""
    include: list = []
    exclude: list = []
    items = value.get("polys", []) if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else []
    for item in items if isinstance(items, (list, tuple)) else []:
        if isinstance(item, dict):
            kind, pts = item.get("type", 1), item.get("pts", [])
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            kind, pts = item
        else:
            continue
        try:
            arr = _points(pts, "a mask polygon")
            include_it = int(kind) == 1
        except (MetadataError, TypeError, ValueError, OverflowError):
            continue
        if len(arr) >= 3:
            (include if include_it else exclude).append(arr.tolist())
    return include, exclude


def _xseg_polys(value: Any, size: int) -> list:
    """Outline polygons (face pixels) of a DFL xseg mask stored as PNG/JPEG bytes or an array; [] when the
    mask cannot be read (it is optional)."""
    import cv2

    try:
        if isinstance(value, (bytes, bytearray)):
            data = bytes(value)
            w, h = image_dimensions(data)
            if not (data.startswith(PNG_SIGNATURE) or data[:2] == b"\xff\xd8") or w * h > 4096 * 4096:
                return []
            mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        else:
            mask = value if isinstance(value, np.ndarray) else None
        if mask is None or mask.ndim < 2 or mask.size == 0 or mask.dtype.kind not in "biuf":
            return []
        mask = mask.reshape(mask.shape[0], mask.shape[1], -1)[..., 0].astype(np.float32)
        if mask.max() > 1.0:
            mask /= 255.0
        binary = (mask > 0.5).astype(np.uint8)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    except (cv2.error, TypeError, ValueError, OverflowError, MemoryError):
        return []
    scale = size / float(mask.shape[1])
    return [(c.reshape(-1, 2).astype(np.float32) * scale).tolist() for c in contours if len(c) >= 3]


def _dfl_file_name(value: Any) -> str:
    """The frame's file name (without folders) from DFL's source_filename, "" when there is none."""
    if value is None:
        return ""
    if not isinstance(value, str) or "\x00" in value:
        raise MetadataError("source_filename is not a file name")
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    return "" if name in (".", "..") else name


def dfl_record(info: dict, image_size: tuple[int, int]) -> FaceRecord:
    """A FaceRecord from the metadata dict of a DFL face of `image_size` (width, height); MetadataError (a
    clause saying what is wrong) for anything it cannot use."""
    if not isinstance(info, dict) or _expanded_size(info, MAX_PICKLED_ITEMS) > MAX_PICKLED_ITEMS:
        raise MetadataError(f"refused metadata that is not a dict of at most {MAX_PICKLED_ITEMS:,} values")
    ft = info.get("face_type")
    if not isinstance(ft, str) or ft not in DFL_FACE_TYPES:
        shown = repr(ft) if isinstance(ft, str) else f"of type {type(ft).__name__}"
        raise MetadataError(f"face type {_short(shown, 60)} cannot be imported (only {', '.join(DFL_FACE_TYPES)})")
    if "landmarks" not in info:
        raise MetadataError("the metadata has no landmarks")
    landmarks = _points(info["landmarks"], "landmarks")
    if landmarks.shape != (68, 2):
        raise MetadataError(f"landmarks have shape {landmarks.shape}, not 68 points")
    mat = info.get("image_to_face_mat")
    if mat is None:
        raise MetadataError("the metadata has no image_to_face_mat")
    try:
        if isinstance(mat, (str, bytes, dict)):
            raise TypeError
        mat = np.asarray(mat, dtype=np.float64)
    except (TypeError, ValueError, OverflowError, RecursionError, MemoryError):
        mat = np.zeros(0)
    if mat.shape != (2, 3) or not np.all(np.isfinite(mat)) or abs(np.linalg.det(mat[:, :2])) < 1e-12:
        raise MetadataError("image_to_face_mat is not an invertible 2x3 matrix")
    from .align import invert, transform_points

    if info.get("source_landmarks") is not None:
        source_landmarks = _points(info["source_landmarks"], "source_landmarks")
        if source_landmarks.shape != (68, 2):
            raise MetadataError("source_landmarks are not 68 points")
    else:
        source_landmarks = transform_points(landmarks, invert(mat))
    rect = info.get("source_rect")
    if rect is None:
        source_rect = (0, 0, 0, 0)
    else:
        try:
            if isinstance(rect, (str, bytes, dict)):
                raise TypeError
            r = np.asarray(rect, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError, OverflowError, RecursionError, MemoryError):
            r = np.zeros(0)
        if r.shape != (4,) or not np.all(np.isfinite(r)) or np.abs(r).max() > MAX_COORDINATE:
            raise MetadataError("source_rect is not four numbers")
        source_rect = tuple(int(round(float(v))) for v in r)
    w, h = image_size
    polys = info.get("seg_ie_polys")
    include, exclude = _dfl_polys(info.get("ie_polys") if polys is None else polys)
    extra: dict[str, Any] = {"imported_from": "dfl", "dfl_face_type": ft}
    if exclude:
        extra["mask_exclude_polys"] = exclude
    if info.get("xseg_mask") is not None:
        extra["xseg_polys"] = _xseg_polys(info["xseg_mask"], w)
    mod = info.get("eyebrows_expand_mod")
    if isinstance(mod, (int, float, np.number)) and not isinstance(mod, (bool, complex, np.complexfloating)):
        try:
            mod = float(mod)
        except (TypeError, ValueError, OverflowError):
            mod = math.nan
        if math.isfinite(mod):
            extra["eyebrows_expand_mod"] = mod
    record = FaceRecord(
        face_type=DFL_FACE_TYPES[ft], size=int(w), landmarks=landmarks, source_landmarks=source_landmarks,
        matrix=mat, source_filename=_dfl_file_name(info.get("source_filename")), source_rect=source_rect,  # type: ignore[arg-type]
        source_size=(0, 0), detector="dfl", landmarker="dfl", mask_polys=include, extra=extra)
    return FaceRecord.from_json(record.to_json())  # the same checks as a record read from a file


@dataclasses.dataclass
class ImportResult:
    imported: list[Path]                  # the faces written (in `folder`)
    skipped: list[tuple[str, str]]        # (file name, why)
    folder: Path                          # where the faces were written
    renamed: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (source name, name written)
    source: Optional[Path] = None         # the folder read (left as it was)

    def reasons(self) -> dict[str, int]:
        """How many files were skipped for each reason, most frequent first."""
        counts: dict[str, int] = {}
        for _, why in self.skipped:
            counts[why] = counts.get(why, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def summary(self) -> str:
        text = f"imported {len(self.imported)} face(s) of the original tool into {self.folder}"
        if self.renamed:
            shown = ", ".join(f"{a} -> {b}" for a, b in self.renamed[:5])
            text += (f" ({len(self.renamed)} under a new name because a different face already had the name, "
                     f"nothing overwritten: {shown}{' ...' if len(self.renamed) > 5 else ''})")
        if self.skipped:
            parts = []
            for why, n in self.reasons().items():
                names = [name for name, w in self.skipped if w == why]
                parts.append(f"{n} {why} ({', '.join(names[:3])}{' ...' if n > 3 else ''})")
            text += f"; skipped {len(self.skipped)}: " + "; ".join(parts)
        if self.source is not None:
            text += f"; {self.source} is left as it was"
        return text + "."


SKIP_NOT_JPEG = "not a JPEG face (the original tool's faces are .jpg files)"
SKIP_NO_METADATA = "no metadata of the original tool"
SKIP_ALREADY = "already imported (the same file is in the output folder)"
SKIP_CHANGED = "changed while it was being imported (run the import again)"
SOURCE_HASH_KEY = "dfl_sha256"   # record extra: SHA-256 of the original tool's file a face was imported from


def _imported_hash(path: Path) -> Optional[str]:
    try:
        rec = read_record(path)
    except (MetadataError, InputError):
        return None
    value = rec.extra.get(SOURCE_HASH_KEY) if rec is not None else None
    return value if isinstance(value, str) else None


def _free_name(dest: Path, name: str, digest: str) -> Optional[Path]:
    """Where to write the face from source file `name`: `name` itself when free, else `<stem>.<n><ext>`
    (the first free n); None when a face imported from the same bytes is already there under one of them."""
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 0
    while True:
        target = dest / (name if n == 0 else f"{stem}.{n}{suffix}")
        if not target.exists():
            return target
        if _imported_hash(target) == digest:
            return None
        n += 1


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def import_dfl(folder: str | os.PathLike, out: str | os.PathLike, *, identity: bool = True,
               reporter=None) -> ImportResult:
    """Import the aligned faces of the original tool in `folder` (JPEG + pickled APP15 metadata) as facedouble
    faces written into `out` (e.g. a workspace's data_src/aligned/): the pickle is read with RestrictedUnpickler
    and replaced by a FaceRecord (mask polygons kept); pixels are untouched. `folder` is only read: not one of
    its bytes changes, and `out` must be another folder.

    Every face is screened for explicit content first (safety.py); SafetyError, and nothing written, when one
    is explicit. A face whose name is taken in `out` by a different face is written as `<stem>.<n>.jpg` (never
    overwriting); one already imported from the same bytes (its record keeps the source's SHA-256) is skipped.
    Files that are not the original tool's faces are skipped with the reason (`ImportResult.reasons()`).
    With `identity`, the 128-d embedding and the head pose are computed from the aligned face."""
    import hashlib

    from .. import safety
    from ..progress import Reporter

    rep = reporter or Reporter()
    src = Path(folder)
    if not src.is_dir():
        raise InputError(f"{src} is not a folder; give the folder of the original tool's aligned faces.")
    dest = Path(out)
    if _same_folder(src, dest):
        raise InputError(f"The faces cannot be imported into {src} itself (the original tool's files would be "
                         "changed); write them into a workspace (-w WS) or another folder (--out DIR).")
    if dest.exists() and not dest.is_dir():
        raise InputError(f"{dest} is a file, not a folder; give a folder to import the faces into.")
    entries = sorted(p for p in src.iterdir() if p.is_file())
    files = [p for p in entries if p.suffix.lower() in (".jpg", ".jpeg")]
    if not files:
        raise InputError(f"No JPEG faces in {src}; the original tool's aligned faces are .jpg files.")
    skipped: list[tuple[str, str]] = [(p.name, SKIP_NOT_JPEG) for p in entries if p not in files]

    # 1. read and screen everything before writing anything
    pending: list[tuple[Path, str, FaceRecord]] = []
    flagged: list[tuple[str, list[dict]]] = []
    for path in rep.track(files, f"Reading and screening faces of {src.name}"):
        try:
            data = _read_bytes(path)
            info = dfl_metadata(data)
            if info is None:
                skipped.append((path.name, SKIP_NO_METADATA))
                continue
            image = decode_image(data, str(path))
            record = dfl_record(info, (image.shape[1], image.shape[0]))
            with_record(_jpeg_without_marker(data, DFL_APP_MARKER), record)  # fails here, not after the identity
        except (MetadataError, InputError) as e:
            skipped.append((path.name, e.message))
            continue
        hits = safety.explicit_detections(safety.detect(image))
        if hits:
            flagged.append((path.name, hits))
        digest = hashlib.sha256(data).hexdigest()
        record.extra[SOURCE_HASH_KEY] = digest
        pending.append((path, digest, record))
    if flagged:
        raise safety.refusal(flagged, str(src), "faces")

    # 2. write into `out`, never over another face
    dest.mkdir(parents=True, exist_ok=True)
    encoder = None
    imported: list[Path] = []
    renamed: list[tuple[str, str]] = []
    for path, digest, record in rep.track(pending, f"Importing faces into {dest.name}"):
        target = _free_name(dest, path.name, digest)
        if target is None:
            skipped.append((path.name, SKIP_ALREADY))
            continue
        try:
            data = _read_bytes(path)
        except (MetadataError, InputError) as e:
            skipped.append((path.name, e.message))
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            skipped.append((path.name, SKIP_CHANGED))
            continue
        if identity:
            from .identity import default_encoder
            from .pose import pose_angles

            encoder = encoder or default_encoder()
            record.identity = encoder(decode_image(data, str(path)), record.landmarks)
            yaw, pitch, roll = pose_angles(record.landmarks, (record.size, record.size))
            record.extra.update({"yaw": round(yaw, 3), "pitch": round(pitch, 3), "roll": round(roll, 3)})
        atomic_write_bytes(target, with_record(_jpeg_without_marker(data, DFL_APP_MARKER), record))
        imported.append(target)
        if target.name != path.name:
            renamed.append((path.name, target.name))
    return ImportResult(imported, skipped, dest, renamed, src)
