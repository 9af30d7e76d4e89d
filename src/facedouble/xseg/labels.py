"""XSeg labels: include and exclude polygons in aligned-face pixels, kept inside each face's record
(`FaceRecord.mask_polys` = include, `FaceRecord.exclude_polys` = exclude; DESIGN.md section 3).

The label mask (include minus exclude) is `faces.regions.label_mask` (pure, shared with training). This module moves labels between a side's aligned faces and
the scripting JSON `{"<face file>": {"include": [[[x, y], ...], ...], "exclude": [...]}}`, and copies the
labelled faces out. An import checks the whole JSON before it writes anything, and each face is rewritten
atomically with its pixels untouched, so a bad file loses nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MetadataError
from ..faces.container import FaceRecord, read_record, update_record
from ..files import atomic_write_text
from ..progress import Reporter
from ..workspace import Workspace

MAX_POINTS = 100_000  # points in one face's polygons


# -- pure ---------------------------------------------------------------------------------------------------

def has_labels(record: FaceRecord) -> bool:
    """Whether a face carries XSeg labels (any include or exclude polygon of 3 or more points)."""
    return any(len(p) >= 3 for p in record.mask_polys) or any(len(p) >= 3 for p in record.exclude_polys)


def check_polygons(value: Any, size: int, where: str) -> list:
    """Polygons of one kind from the JSON: a list of polygons of [x, y] numbers inside the face (0..size);
    InputError naming `where` otherwise."""
    if not isinstance(value, list):
        raise InputError(f"{where} is not a list of polygons; give [[[x, y], ...], ...].")
    out = []
    for poly in value:
        if not isinstance(poly, list) or not all(isinstance(pt, list) and len(pt) == 2 for pt in poly):
            raise InputError(f"{where} has a polygon that is not a list of [x, y] points.")
        pts = []
        for x, y in poly:
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (x, y)):
                raise InputError(f"{where} has a point that is not two finite numbers.")
            if not (0 <= x <= size and 0 <= y <= size):
                raise InputError(f"{where} has the point ({x:g}, {y:g}) outside the {size} x {size} px face; "
                                 f"give aligned-face pixel coordinates from 0 to {size}.")
            pts.append([float(x), float(y)])
        if len(pts) < 3:
            raise InputError(f"{where} has a polygon of {len(pts)} point(s); a polygon needs at least 3.")
        out.append(pts)
    return out


# -- workspace ----------------------------------------------------------------------------------------------

def _side_folder(ws: Workspace, side: str) -> Path:
    if side not in ("src", "dst"):
        raise InputError(f"Side must be src or dst, not {side!r}.")
    folder = ws.aligned(side)  # type: ignore[arg-type]
    if not folder.is_dir():
        raise InputError(f"{folder} does not exist; extract the {side} faces first (`facedouble extract {side}`).")
    return folder


def labelled_faces(ws: Workspace, side: str) -> list[tuple[Path, FaceRecord]]:
    """(path, record) of every face of a side that carries labels, in file order; unreadable faces skipped."""
    out = []
    for path in ws.face_files(side):  # type: ignore[arg-type]
        try:
            rec = read_record(path)
        except MetadataError:
            continue
        if rec is not None and has_labels(rec):
            out.append((path, rec))
    return out


def export_labels(ws: Workspace, side: str) -> dict[str, dict[str, list]]:
    """The labels of a side as the scripting JSON value (labelled faces only)."""
    _side_folder(ws, side)
    return {path.name: {"include": [p for p in rec.mask_polys if len(p) >= 3],
                        "exclude": [p for p in rec.exclude_polys if len(p) >= 3]}
            for path, rec in labelled_faces(ws, side)}


def write_labels_json(data: dict, out: str | os.PathLike) -> Path:
    out = Path(out)
    atomic_write_text(out, json.dumps(data, indent=1))
    return out


@dataclasses.dataclass
class ImportResult:
    written: list[str]
    cleared: list[str]

    def summary(self) -> str:
        text = f"labels written into {len(self.written)} face(s)"
        return text + (f", removed from {len(self.cleared)}" if self.cleared else "") + "."


def read_labels_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"Label file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"Label file {path} is not readable JSON ({e}); fix or re-export it.") from None
    if not isinstance(data, dict):
        raise InputError(f"Label file {path} is not a JSON object of face file names; give "
                         '{"<face file>": {"include": [...], "exclude": [...]}}.')
    return data


def import_labels(ws: Workspace, side: str, data: dict, *, source: str = "the label JSON",
                  reporter: Reporter | None = None) -> ImportResult:
    """Write the labels of `data` into the faces it names (replacing their labels; an entry with no polygons
    removes them). Everything is checked first: a face that does not exist, a polygon outside its face or a
    malformed entry raises InputError before any face is written."""
    rep = reporter or Reporter()
    folder = _side_folder(ws, side)
    plan: list[tuple[Path, FaceRecord]] = []
    for name, entry in data.items():
        where = f"{source}, entry {name!r}"
        if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
            raise InputError(f"{where} is not the name of a face file in {folder}.")
        path = folder / name
        if not path.is_file():
            raise InputError(f"{where} names a face that does not exist in {folder}; check the side and the name "
                             "(faces renamed by sort need a fresh export).")
        if not isinstance(entry, dict) or set(entry) - {"include", "exclude"}:
            raise InputError(f"{where} is not an object with include and exclude polygons.")
        rec = read_record(path)
        if rec is None:
            raise InputError(f"{path} has no face record; extract it again before labelling it.")
        include = check_polygons(entry.get("include", []), rec.size, f"{where} (include)")
        exclude = check_polygons(entry.get("exclude", []), rec.size, f"{where} (exclude)")
        if sum(len(p) for p in include + exclude) > MAX_POINTS:
            raise InputError(f"{where} has more than {MAX_POINTS} points; simplify its polygons.")
        plan.append((path, dataclasses.replace(rec, mask_polys=include, exclude_polys=exclude)))
    written, cleared = [], []
    for path, rec in rep.track(plan, f"Writing {side} labels"):
        update_record(path, rec)
        (written if has_labels(rec) else cleared).append(path.name)
    return ImportResult(written, cleared)


def fetch_labelled(ws: Workspace, side: str, out: str | os.PathLike) -> list[Path]:
    """Copy the labelled faces of a side (with their records) into `out`; a file already there is kept."""
    _side_folder(ws, side)
    out = Path(out)
    if out.resolve() == ws.aligned(side).resolve():  # type: ignore[arg-type]
        raise InputError(f"--out {out} is the aligned folder itself; give another folder.")
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for path, _ in labelled_faces(ws, side):
        target = out / path.name
        if target.exists():
            continue
        tmp = out / f".{path.name}.{os.getpid()}.tmp"
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
        copied.append(target)
    return copied
