"""The face record (DESIGN.md section 3): what facedouble knows about one aligned face, as a versioned JSON
object, with the checks of every field (each raises MetadataError naming the field). The files that carry it
are faces/container.py's; faces made by the original tool are turned into records by faces/dfl.py."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Optional

import numpy as np

from ..choices import FaceType, values
from ..errors import MetadataError
from ..imagefile import PNG_SIGNATURE, encode_png, header_size

FORMAT_VERSION = 2  # 2: XSeg labels as explicit include (mask_polys) and exclude_polys, applied xseg_mask
MAX_COORDINATE = 1e9                    # |x|, |y| of a stored point or rectangle
FACE_TYPES = frozenset(values(FaceType))
UPGRADE_ADVICE = "upgrade facedouble"  # the advice of a record too new; other damage: delete or re-extract


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
                                f"{UPGRADE_ADVICE}")
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
            raise MetadataError(f"the face record is not valid JSON ({shorten(e)})") from None
        except RecursionError:
            raise MetadataError("the face record is not valid JSON (nested too deeply)") from None
        return cls.from_json(data)


# -- checks of the record's fields (each raises MetadataError naming the field) -----------------------------

def shorten(value: Any, n: int = 80) -> str:
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


HANDS_KEY = "hands"  # extra[HANDS_KEY]: the hands tracked over the face (extract/hands.py)


def hands_of(record: FaceRecord) -> list[np.ndarray] | None:
    """The tracked hands over a face ((21, 2) float32 frame pixels each), [] when none, None when the face
    was never checked (or its stored hands are malformed)."""
    value = record.extra.get(HANDS_KEY)
    if not isinstance(value, list):
        return None
    try:
        hands = [np.asarray(h, np.float32) for h in value]
    except (TypeError, ValueError):
        return None
    if not all(h.shape == (21, 2) and np.isfinite(h).all() for h in hands):
        return None
    return hands


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


