"""The files of a side that the extraction stage reads and writes: aligned face names, debug images, the
resume state (extract_state.json), the manual-fix list, manual rectangles, and reading a frame."""

from __future__ import annotations

import dataclasses
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Optional

from ..choices import Side, values
from ..config import write_json_atomic
from ..errors import InputError, MetadataError, OptionError
from ..faces import container
from ..workspace import Workspace

STATE_NAME = "extract_state.json"
MANUAL_FIX_NAME = "manual_fix.json"


def check_side(side: str) -> None:
    if side not in values(Side):
        raise OptionError(f"Side must be src or dst, not {side!r}.")


def face_name(frame_name: str, index: int) -> str:
    return f"{Path(frame_name).stem}_{index}.jpg"


def debug_path(ws: Workspace, side: Side, frame_name: str) -> Path:
    return ws.aligned_debug(side) / f"{Path(frame_name).stem}.jpg"


def faces_by_frame(ws: Workspace, side: Side, frame_names: Iterable[str] | None = None) -> dict[str, list[Path]]:
    """Aligned face files of each frame. Files named <frame>_<i> are matched by name; others (renamed by
    sorting) by the source file name in their record."""
    names = list(frame_names) if frame_names is not None else [p.name for p in ws.frame_files(side)]
    by_stem = {Path(n).stem: n for n in names}
    known = set(names)
    out: dict[str, list[Path]] = defaultdict(list)
    for p in ws.face_files(side):
        stem, sep, idx = p.stem.rpartition("_")
        if sep and idx.isdigit() and stem in by_stem:
            out[by_stem[stem]].append(p)
            continue
        try:
            rec = container.read_record(p)
        except (MetadataError, InputError):
            continue
        if rec is not None and rec.source_filename in known:
            out[rec.source_filename].append(p)
    return dict(out)


def frames_without_faces(ws: Workspace, side: Side) -> list[str]:
    """Frames of the side that have no aligned face (for the manual fix)."""
    have = faces_by_frame(ws, side)
    return [p.name for p in ws.frame_files(side) if p.name not in have]


def read_rects(path: str | os.PathLike) -> dict[str, list[list[float]]]:
    """Manual face rectangles: {"000012.png": [[x0, y0, x1, y1], ...], ...} (a bare stem also matches)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"Rectangles file {path} does not exist; give a JSON file like "
                         '{"000012.png": [[120, 80, 280, 260]]} (x0, y0, x1, y1 in frame pixels).') from None
    except (OSError, ValueError) as e:
        raise InputError(f"Rectangles file {path} is not valid JSON ({e}); fix it.") from None
    if not isinstance(data, dict):
        raise InputError(f"Rectangles file {path} must hold an object mapping frame names to lists of boxes (x0, y0, x1, y1), "
                             'like {"000012.png": [[120, 80, 280, 260]]}.')
    out: dict[str, list[list[float]]] = {}
    for name, rects in data.items():
        if isinstance(rects, list) and len(rects) == 4 and all(isinstance(v, (int, float)) for v in rects):
            rects = [rects]
        ok = isinstance(rects, list) and all(
            isinstance(r, list) and len(r) == 4 and all(isinstance(v, (int, float)) for v in r)
            and r[2] - r[0] >= 4 and r[3] - r[1] >= 4 for r in rects)
        if not ok:
            raise InputError(f"Rectangles file {path}: the entry for {name!r} must be a list of boxes (x0, y0, x1, y1) "
                             "with x1 > x0 and y1 > y0, like [[120, 80, 280, 260]].")
        out[str(name)] = [[float(v) for v in r] for r in rects]
    return out


def rects_for(rects: dict[str, list], name: str) -> Optional[list]:
    return rects.get(name, rects.get(Path(name).stem))


@dataclasses.dataclass
class ExtractState:
    """data_<side>/extract_state.json: frames already worked on, so a re-run skips them (also those with no
    face, and those whose faces the user deleted on purpose)."""

    path: Path
    detector: str = ""
    done: set[str] = dataclasses.field(default_factory=set)
    no_face: set[str] = dataclasses.field(default_factory=set)
    unreadable: set[str] = dataclasses.field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> "ExtractState":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(path, str(data.get("detector", "")), set(data.get("done", [])), set(data.get("no_face", [])),
                       set(data.get("unreadable", [])))
        except (OSError, ValueError, AttributeError, TypeError):
            return cls(path)

    def save(self) -> None:
        write_json_atomic(self.path, {"detector": self.detector, "done": sorted(self.done),
                                      "no_face": sorted(self.no_face), "unreadable": sorted(self.unreadable)})


def write_manual_fix(ws: Workspace, side: Side, frames: list[str]) -> Path:
    """data_<side>/manual_fix.json: the frames without a face, for the browser UI's manual mode."""
    path = ws.frames(side) / MANUAL_FIX_NAME
    write_json_atomic(path, {"side": side, "count": len(frames), "frames": frames})
    return path
