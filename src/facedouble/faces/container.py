"""Face metadata inside the face image (DESIGN.md section 3). Never pickle.

JPEG: one or more APP9 segments, each starting with IDENT, a 2-byte part number and a 2-byte part count,
then a slice of the UTF-8 JSON record. PNG: one iTXt chunk with keyword "facedouble". The record is a
versioned JSON object (`FaceRecord`). Images in and out are RGB uint8 HWC.

The record itself (`FaceRecord`, its fields and their checks) is faces/record.py's; faces made by the
original tool (a pickled dict in JPEG APP15) are imported by faces/dfl.py. Nothing here unpickles.

Every reader here takes untrusted bytes: it returns a valid record (or None where it says so) or raises
MetadataError, never another exception, and never inflates or allocates without a bound
(tests/reliability/test_reliability_security.py fuzzes them). Errors of the bytes-level readers are clauses ("a JPEG
segment runs past the end of the file"); `read_record` and `read_face` make them one sentence naming the file.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import InputError, MetadataError
from ..imagefile import PNG_SIGNATURE, encode_png, header_size
from ..files import atomic_write_bytes
from .record import UPGRADE_ADVICE, FaceRecord, xseg_mask_array, xseg_mask_field  # noqa: F401 (what a face file holds)

IDENT = b"facedouble\x00"
APP_MARKER = 0xE9  # APP9; APP11 is C2PA's (JUMBF), APP15 the original tool's
PNG_KEYWORD = b"facedouble"
_SEGMENT_PAYLOAD = 65533 - len(IDENT) - 4  # a JPEG segment holds at most 65535 bytes including its length
MAX_RECORD_BYTES = 64 * 1024 * 1024     # a compressed PNG record inflating past this is refused (a zip bomb)
MAX_IMAGE_PIXELS = 1 << 25              # face images declaring more pixels are refused before decoding (~33 MP;
                                        # a progressive JPEG decoder needs ~12 bytes a pixel)

# -- JPEG -----------------------------------------------------------------------------------------

def jpeg_segments(data: bytes):
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
    for marker, start, end in jpeg_segments(data):
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
    for marker, start, end in jpeg_segments(data):
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


def read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"Face image {path} does not exist.") from None
    except OSError as e:
        raise InputError(f"Cannot read face image {path} ({e.strerror}).") from None


def _in_file(path: str | os.PathLike, e: MetadataError) -> MetadataError:
    """A reader's clause made one sentence that names the file and says what to do."""
    reason = e.message.rstrip(".")
    todo = "" if reason.endswith(UPGRADE_ADVICE) else "; delete the image or extract the face again"
    return MetadataError(f"Cannot read the face record of {path}: {reason}{todo}.")


def read_record(path: str | os.PathLike) -> FaceRecord | None:
    """The record inside a face image, None if it has none; MetadataError if it is corrupt."""
    try:
        raw = record_bytes(read_bytes(Path(path)))
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
    data = read_bytes(path)
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
    atomic_write_bytes(path, with_record(read_bytes(path), record))


