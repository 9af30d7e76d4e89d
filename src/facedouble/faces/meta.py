"""Face metadata inside the face image (DESIGN.md section 3). Never pickle.

JPEG: one or more APP9 segments, each starting with IDENT, a 2-byte part number and a 2-byte part count,
then a slice of the UTF-8 JSON record. PNG: one iTXt chunk with keyword "facedouble". The record is a
versioned JSON object (`FaceRecord`). Images in and out are RGB uint8 HWC.

Faces made by the original tool (a pickled dict in JPEG APP15) are imported with `import_dfl`, which reads
the pickle with `RestrictedUnpickler` (numpy arrays and plain values only); nothing else here unpickles.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import InputError, MetadataError
from ..files import atomic_write_bytes

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
    import codecs

    allowed = {("numpy", "ndarray"): numpy.ndarray, ("numpy", "dtype"): numpy.dtype,
               ("_codecs", "encode"): codecs.encode}  # protocol 2 writes bytes as _codecs.encode(str, 'latin1')
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = numeric._frombuffer
    return allowed


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
    """Unpickle untrusted bytes with RestrictedUnpickler; MetadataError if refused or corrupt."""
    import io

    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except MetadataError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt pickle can raise nearly anything
        raise MetadataError(f"corrupt pickled metadata ({type(e).__name__}: {e})") from None


def dfl_metadata(data: bytes) -> dict | None:
    """The dict in the APP15 segment of a DFL face JPEG, None if there is none."""
    if data[:2] != b"\xff\xd8":
        raise MetadataError("Not a JPEG file (no SOI marker).")
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
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.all(np.isfinite(arr)):
        raise MetadataError(f"{name} is not a list of (x, y) points")
    return arr


def _dfl_polys(value: Any) -> tuple[list, list]:
    """(include, exclude) polygons from DFL's seg_ie_polys: {'polys': [{'type': 1|0, 'pts': Nx2}, ...]} or
    the older list of (type, pts)."""
    include: list = []
    exclude: list = []
    items = value.get("polys", []) if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else []
    for item in items:
        if isinstance(item, dict):
            kind, pts = item.get("type", 1), item.get("pts", [])
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            kind, pts = item
        else:
            continue
        try:
            arr = _points(pts, "a mask polygon")
        except MetadataError:
            continue
        if len(arr) >= 3:
            (include if int(kind) == 1 else exclude).append(arr.tolist())
    return include, exclude


def _xseg_polys(value: Any, size: int) -> list:
    """Outline polygons (face pixels) of a DFL xseg mask stored as PNG/JPEG bytes or an array."""
    import cv2

    if isinstance(value, (bytes, bytearray)):
        mask = cv2.imdecode(np.frombuffer(bytes(value), np.uint8), cv2.IMREAD_UNCHANGED)
    else:
        mask = np.asarray(value) if isinstance(value, np.ndarray) else None
    if mask is None or mask.ndim < 2 or mask.size == 0:
        return []
    mask = mask.reshape(mask.shape[0], mask.shape[1], -1)[..., 0].astype(np.float32)
    if mask.max() > 1.0:
        mask /= 255.0
    binary = (mask > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    scale = size / float(mask.shape[1])
    return [(c.reshape(-1, 2).astype(np.float32) * scale).tolist() for c in contours if len(c) >= 3]


def dfl_record(info: dict, image_size: tuple[int, int]) -> FaceRecord:
    """A FaceRecord from the metadata dict of a DFL face of `image_size` (width, height)."""
    ft = info.get("face_type")
    if ft not in DFL_FACE_TYPES:
        raise MetadataError(f"face type {ft!r} cannot be imported (only {', '.join(DFL_FACE_TYPES)})")
    if "landmarks" not in info:
        raise MetadataError("the metadata has no landmarks")
    landmarks = _points(info["landmarks"], "landmarks")
    if landmarks.shape != (68, 2):
        raise MetadataError(f"landmarks have shape {landmarks.shape}, not 68 points")
    mat = info.get("image_to_face_mat")
    if mat is None:
        raise MetadataError("the metadata has no image_to_face_mat")
    mat = np.asarray(mat, dtype=np.float64)
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
    try:
        source_rect = tuple(int(round(float(v))) for v in rect) if rect is not None else (0, 0, 0, 0)
    except (TypeError, ValueError):
        raise MetadataError("source_rect is not four numbers") from None
    if len(source_rect) != 4:
        raise MetadataError("source_rect is not four numbers")
    w, h = image_size
    include, exclude = _dfl_polys(info.get("seg_ie_polys") or info.get("ie_polys") or [])
    extra: dict[str, Any] = {"imported_from": "dfl", "dfl_face_type": ft}
    if exclude:
        extra["mask_exclude_polys"] = exclude
    if info.get("xseg_mask") is not None:
        extra["xseg_polys"] = _xseg_polys(info["xseg_mask"], w)
    if info.get("eyebrows_expand_mod") is not None:
        try:
            extra["eyebrows_expand_mod"] = float(info["eyebrows_expand_mod"])
        except (TypeError, ValueError):
            pass
    return FaceRecord(
        face_type=DFL_FACE_TYPES[ft], size=int(w), landmarks=landmarks, source_landmarks=source_landmarks,
        matrix=mat, source_filename=str(info.get("source_filename") or ""), source_rect=source_rect,  # type: ignore[arg-type]
        source_size=(0, 0), detector="dfl", landmarker="dfl", mask_polys=include, extra=extra)


@dataclasses.dataclass
class ImportResult:
    imported: list[Path]
    skipped: list[tuple[str, str]]        # (file name, why)
    folder: Path

    def summary(self) -> str:
        text = f"imported {len(self.imported)} face(s) of the original tool into {self.folder}"
        if self.skipped:
            shown = "; ".join(f"{n}: {why}" for n, why in self.skipped[:10])
            text += f"; skipped {len(self.skipped)} ({shown}{' ...' if len(self.skipped) > 10 else ''})"
        return text + "."


def import_dfl(folder: str | os.PathLike, out: str | os.PathLike | None = None, *, identity: bool = True,
               reporter=None) -> ImportResult:
    """Convert the aligned faces of the original tool in `folder` (JPEG + pickled APP15 metadata) to
    facedouble faces: the pickle is read with RestrictedUnpickler, the APP15 segment is removed and a
    FaceRecord is added; pixels are untouched. Writes into `out` (default: in place). With `identity`, the
    128-d embedding and the head pose are computed from the aligned face."""
    from ..progress import Reporter

    rep = reporter or Reporter()
    src = Path(folder)
    if not src.is_dir():
        raise InputError(f"{src} is not a folder; give the folder of the original tool's aligned faces.")
    dest = Path(out) if out is not None else src
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        raise InputError(f"No JPEG faces in {src}; the original tool's aligned faces are .jpg files.")
    encoder = None
    imported: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for path in rep.track(files, f"Importing faces from {src.name}"):
        data = _read_bytes(path)
        try:
            info = dfl_metadata(data)
            if info is None:
                skipped.append((path.name, "no metadata of the original tool"))
                continue
            image = decode_image(data, str(path))
            record = dfl_record(info, (image.shape[1], image.shape[0]))
        except MetadataError as e:
            skipped.append((path.name, e.message))
            continue
        except InputError as e:
            skipped.append((path.name, e.message))
            continue
        if identity:
            from .identity import default_encoder
            from .pose import pose_angles

            encoder = encoder or default_encoder()
            record.identity = encoder(image, record.landmarks)
            yaw, pitch, roll = pose_angles(record.landmarks, (record.size, record.size))
            record.extra.update({"yaw": round(yaw, 3), "pitch": round(pitch, 3), "roll": round(roll, 3)})
        target = dest / path.name
        atomic_write_bytes(target, with_record(_jpeg_without_marker(data, DFL_APP_MARKER), record))
        imported.append(target)
    return ImportResult(imported, skipped, dest)
