"""Face-set utilities (`facedouble util ...`): landmark debug copies, original names, metadata backup.

- `add_landmarks_debug`: a `<name>_debug.jpg` beside each face with its landmarks and hull drawn, so bad
  alignments can be spotted in a file browser (delete the bad face, then `remove_debug`).
- `remove_debug`: deletes those debug copies (only images without a face record, i.e. ones we drew).
- `recover_original_filenames`: renames every face back to `<frame>_<index>.<ext>` from its record;
  journalled like a sort, so `facedouble sort undo` reverts it.
- `save_metadata` / `restore_metadata`: every face record of a folder to one JSON file and back, so faces
  can be retouched in an image editor (which drops the metadata) and get their records back, matched by
  file name (also through a sort prefix or a changed extension).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np

from ..config import write_json_atomic
from ..errors import InputError, MetadataError, WorkspaceError
from ..faces import container
from ..faces.container import FaceRecord
from ..progress import Reporter
from . import journal
from .sorting import _has_record, describe, is_debug_image, list_images, original_name

METADATA_FORMAT = "facedouble-faceset-metadata"
METADATA_NAME = "metadata.json"


@dataclasses.dataclass
class FacesetResult:
    action: str
    folder: Path
    done: list[str]
    skipped: dict[str, str]
    file: Path | None = None
    unchanged: int = 0

    def summary(self) -> str:
        verb = {"add-landmarks-debug": "wrote debug copies of", "remove-debug": "removed",
                "recover-original-filename": "renamed", "metadata-save": "saved the records of",
                "metadata-restore": "restored the records of"}[self.action]
        text = f"{self.folder}: {verb} {len(self.done)} file(s)"
        if self.file is not None:
            text += f" ({self.file})"
        if self.unchanged:
            text += f"; {self.unchanged} already right"
        text += "."
        if self.skipped:
            text += f" Skipped {len(self.skipped)}: {describe(self.skipped)}."
        return text


def _folder(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise WorkspaceError(f"There is no face folder {folder}; check the path (extract faces first).")
    return folder


def _faces(folder: Path) -> list[Path]:
    """Images of a folder except the debug copies drawn by `add_landmarks_debug` (named *_debug, no record)."""
    return [p for p in list_images(folder) if not (is_debug_image(p) and not _has_record(p))]


def _read(path: Path) -> tuple[FaceRecord | None, str | None]:
    try:
        record = container.read_record(path)
    except MetadataError as e:
        return None, f"damaged face record: {e.message}"
    except InputError as e:
        return None, e.message
    return (record, None) if record is not None else (None, "no face record")


# -- debug copies ------------------------------------------------------------------------------------

def draw_landmarks(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A copy of an aligned face (RGB uint8) with the face hull outline, the 68 points and the eye and
    mouth contours drawn."""
    import cv2

    out = np.ascontiguousarray(image.copy())
    lm = np.asarray(landmarks, dtype=np.float64)
    size = max(out.shape[:2])
    thick = max(1, size // 256)
    hull = cv2.convexHull(np.round(lm[list(range(17)) + list(range(26, 16, -1))]).astype(np.int32))
    cv2.polylines(out, [hull], True, (0, 200, 255), thick, cv2.LINE_AA)
    for lo, hi, closed in ((36, 42, True), (42, 48, True), (48, 60, True), (27, 31, False), (17, 22, False), (22, 27, False)):
        cv2.polylines(out, [np.round(lm[lo:hi]).astype(np.int32)], closed, (255, 255, 0), thick, cv2.LINE_AA)
    for x, y in lm:
        cv2.circle(out, (int(round(x)), int(round(y))), thick + 1, (0, 255, 0), -1, cv2.LINE_AA)
    return out


def add_landmarks_debug(folder: Path, *, reporter: Reporter | None = None) -> FacesetResult:
    rep = reporter or Reporter()
    folder = _folder(folder)
    done: list[str] = []
    skipped: dict[str, str] = {}
    with journal.FolderLock(folder):
        for path in rep.track(_faces(folder), "drawing landmarks"):
            try:
                image, record = container.read_face(path)
            except (MetadataError, InputError) as e:
                skipped[path.name] = "no face record" if "has no facedouble face record" in e.message else e.message
                continue
            target = path.with_name(path.stem + "_debug.jpg")
            if target.exists() and container.read_record(target) is not None:
                skipped[path.name] = f"{target.name} exists and is a face, not a debug copy"
                continue
            scale = image.shape[1] / float(record.size or image.shape[1])
            drawn = draw_landmarks(image, record.landmarks * scale)
            container.atomic_write_bytes(target, container.encode_image(drawn, ".jpg", 90))
            done.append(target.name)
    return FacesetResult("add-landmarks-debug", folder, done, skipped)


def remove_debug(folder: Path, *, reporter: Reporter | None = None) -> FacesetResult:
    rep = reporter or Reporter()
    folder = _folder(folder)
    done: list[str] = []
    skipped: dict[str, str] = {}
    with journal.FolderLock(folder):
        for path in rep.track([p for p in list_images(folder) if is_debug_image(p)], "removing debug copies"):
            record, problem = _read(path)
            if record is not None:
                skipped[path.name] = "holds a face record, so it is a face and was kept"
                continue
            path.unlink()
            done.append(path.name)
    return FacesetResult("remove-debug", folder, done, skipped)


# -- names -------------------------------------------------------------------------------------------

def recover_original_filenames(folder: Path, *, reporter: Reporter | None = None) -> FacesetResult:
    rep = reporter or Reporter()
    folder = _folder(folder)
    skipped: dict[str, str] = {}
    with journal.FolderLock(folder):
        journal.finish_pending(folder)
        wanted: dict[str, list[Path]] = {}
        for path in rep.track(_faces(folder), "reading face records"):
            record, problem = _read(path)
            if record is None:
                skipped[path.name] = problem or "no face record"
                continue
            wanted.setdefault(original_name(record, path.suffix), []).append(path)
        names = {p.name for p in folder.iterdir()}
        moving = {p.name for paths in wanted.values() for p in paths}
        moves = []
        done = []
        for target, paths in sorted(wanted.items()):
            if len(paths) > 1:
                keeper = next((p for p in paths if p.name == target), None)
                for p in paths:
                    if p is not keeper:
                        skipped[p.name] = f"another face already has the original name {target}"
                if keeper is None:
                    continue
                paths = [keeper]
            p = paths[0]
            if p.name == target:
                continue
            if target in names and target not in moving:
                skipped[p.name] = f"{target} is taken by an image without a face record"
                continue
            moves.append((f"{folder.name}/{p.name}", f"{folder.name}/{target}"))
            done.append(target)
            debug, new_debug = p.stem + "_debug.jpg", Path(target).stem + "_debug.jpg"
            if debug in names and new_debug not in names and not _has_record(folder / debug):
                moves.append((f"{folder.name}/{debug}", f"{folder.name}/{new_debug}"))  # its debug copy follows
        if moves:
            j = journal.create(folder, "recover-original-filename", moves, info={"method": "recover-original-filename"})
            journal.apply(j)
    return FacesetResult("recover-original-filename", folder, done, skipped)


# -- metadata backup ---------------------------------------------------------------------------------

def _metadata_path(folder: Path, file: Path | None) -> Path:
    return Path(file) if file is not None else folder / METADATA_NAME


def save_metadata(folder: Path, file: Path | None = None, *, reporter: Reporter | None = None) -> FacesetResult:
    """Write every face record of `folder` to one JSON file (default `<folder>/metadata.json`)."""
    rep = reporter or Reporter()
    folder = _folder(folder)
    path = _metadata_path(folder, file)
    faces: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for p in rep.track(_faces(folder), "reading face records"):
        record, problem = _read(p)
        if record is None:
            skipped[p.name] = problem or "no face record"
            continue
        faces[p.name] = record.to_json()
    if not faces:
        raise InputError(f"No image in {folder} has a face record, so there is nothing to save.")
    write_json_atomic(path, {"format": METADATA_FORMAT, "version": 1, "faces": faces})
    return FacesetResult("metadata-save", folder, sorted(faces), skipped, file=path)


def _resized(record: FaceRecord, width: int) -> FaceRecord:
    """The record of the same face saved at `width` x `width` pixels instead of `record.size`."""
    s = width / float(record.size)
    scale = np.array([[s, 0.0, 0.0], [0.0, s, 0.0]])
    out = dataclasses.replace(record)
    out.size = int(width)
    out.landmarks = (record.landmarks * np.float32(s)).astype(np.float32)
    out.matrix = scale @ np.vstack([record.matrix, [0.0, 0.0, 1.0]])
    out.mask_polys = [[[float(x) * s, float(y) * s] for x, y in poly] for poly in record.mask_polys]
    out.exclude_polys = [[[float(x) * s, float(y) * s] for x, y in poly] for poly in record.exclude_polys]
    return out


def restore_metadata(folder: Path, file: Path | None = None, *, reporter: Reporter | None = None) -> FacesetResult:
    """Put saved records back into the face images of `folder`, pixels untouched. An image is matched to a
    saved record by its name, else by its name without a sort prefix, else by its stem (an editor saved it
    as another format). An image resized to another square size gets its landmarks scaled."""
    import cv2

    rep = reporter or Reporter()
    folder = _folder(folder)
    path = _metadata_path(folder, file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"Metadata file {path} does not exist; save one first with `facedouble util metadata-save`.") from None
    except (OSError, ValueError) as e:
        raise InputError(f"Metadata file {path} is not valid JSON ({e}); give the file metadata-save wrote.") from None
    if not isinstance(data, dict) or data.get("format") != METADATA_FORMAT or not isinstance(data.get("faces"), dict):
        raise InputError(f"{path} is not a face-set metadata file; give the file metadata-save wrote.")
    saved: dict[str, FaceRecord] = {}
    for name, raw in data["faces"].items():
        try:
            saved[str(name)] = FaceRecord.from_json(raw)
        except MetadataError:
            continue
    by_original: dict[str, list[str]] = {}
    by_stem: dict[str, list[str]] = {}
    for name, rec in saved.items():
        by_original.setdefault(original_name(rec, Path(name).suffix), []).append(name)
        by_stem.setdefault(Path(name).stem, []).append(name)

    done: list[str] = []
    skipped: dict[str, str] = {}
    unchanged = 0
    used: set[str] = set()
    with journal.FolderLock(folder):
        for p in rep.track(_faces(folder), "restoring face records"):
            key = p.name if p.name in saved else None
            if key is None:
                prefixed = re.fullmatch(r"\d+_(.+)", p.name)  # maybe a sort prefix before the saved name
                plain = prefixed.group(1) if prefixed else p.name
                for cand in (by_original.get(p.name, []), by_original.get(plain, []), by_stem.get(p.stem, []),
                             by_stem.get(Path(plain).stem, []), [plain] if plain in saved else []):
                    if len(cand) == 1:
                        key = cand[0]
                        break
            if key is None:
                skipped[p.name] = "not in the metadata file"
                continue
            used.add(key)
            record = saved[key]
            arr = cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_UNCHANGED)
            if arr is None:
                skipped[p.name] = "unreadable image"
                continue
            h, w = arr.shape[:2]
            if h != w:
                skipped[p.name] = f"is {w}x{h}, no longer square, so the landmarks cannot follow"
                continue
            if w != record.size:
                record = _resized(record, w)
            try:
                current = container.read_record(p)
            except MetadataError:
                current = None
            if current is not None and current.to_bytes() == record.to_bytes():
                unchanged += 1
                continue
            container.update_record(p, record)
            done.append(p.name)
    for name in sorted(set(saved) - used):
        skipped.setdefault(name, "in the metadata file but not in the folder")
    return FacesetResult("metadata-restore", folder, done, skipped, file=path, unchanged=unchanged)
