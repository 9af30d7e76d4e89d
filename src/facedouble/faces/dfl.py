"""Faces extracted by the original tool (DFL): its metadata read without running code, turned into facedouble
records, and whole folders imported into a workspace without changing the source."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import pickle
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import InputError, MetadataError
from ..files import atomic_write_bytes
from ..imagefile import PNG_SIGNATURE
from .container import decode_image, image_dimensions, jpeg_segments, read_bytes, read_record, with_record
from .record import MAX_COORDINATE, FaceRecord, shorten

MAX_PICKLED_ITEMS = 4_000_000           # values in DFL metadata once shared references are expanded

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
        raise MetadataError(f"corrupt pickled metadata ({type(e).__name__}: {shorten(e)})") from None
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
    for marker, start, end in jpeg_segments(data):
        if marker == DFL_APP_MARKER:
            value = restricted_loads(data[start + 4:end])
            if not isinstance(value, dict):
                raise MetadataError("the APP15 metadata is not a dict")
            return value
    return None


def _jpeg_without_marker(data: bytes, marker_to_drop: int) -> bytes:
    out, head_end = [], 2
    for marker, start, end in jpeg_segments(data):
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
        raise MetadataError(f"face type {shorten(shown, 60)} cannot be imported (only {', '.join(DFL_FACE_TYPES)})")
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
            data = read_bytes(path)
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
            data = read_bytes(path)
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

