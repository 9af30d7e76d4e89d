"""The one trash of a faceset: faces move between aligned/ and aligned_trash/ through the sort journal, so every
move can be undone (`facedouble sort undo`, the UI's undo), a run killed half-way is finished by the next one, and
no file is ever overwritten (a name already in the trash gets `.1`, `.2` ... before its suffix). Used by sort,
by extraction (faces replaced by a manual fix) and by the browser UI's faceset browser."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from ..choices import Side
from ..workspace import Workspace
from . import journal


def free_name(name: str, taken: set[str]) -> str:
    """`name`, or `stem.N.suffix` with the smallest N >= 1 not in `taken`."""
    target, k = name, 1
    while target in taken:
        stem, suffix = os.path.splitext(name)
        target, k = f"{stem}.{k}{suffix}", k + 1
    return target


def move_faces(ws: Workspace, side: Side, names: Iterable[str], *, to_trash: bool = True,
               by: str = "ui") -> dict[str, Any]:
    """Move the named faces from aligned/ to aligned_trash/ (or back with `to_trash=False`), journalled.

    Returns {"moved": [names as they are now], "missing": [names that were not there]}."""
    folder, trash = ws.aligned(side), ws.aligned_trash(side)
    src_dir, dst_dir = (folder, trash) if to_trash else (trash, folder)
    names = list(dict.fromkeys(names))
    if not names:
        return {"moved": [], "missing": []}
    folder.mkdir(parents=True, exist_ok=True)
    dst_dir.mkdir(parents=True, exist_ok=True)
    with journal.FolderLock(folder):
        journal.finish_pending(folder)
        taken = {p.name for p in dst_dir.iterdir()}
        moves, moved, missing = [], [], []
        for n in names:
            if not (src_dir / n).is_file():
                missing.append(n)
                continue
            target = free_name(n, taken)
            taken.add(target)
            moves.append((f"{src_dir.name}/{n}", f"{dst_dir.name}/{target}"))
            moved.append(target)
        if moves:
            j = journal.create(folder, "trash" if to_trash else "restore", moves, info={"by": by})
            missing += journal.apply(j)
    return {"moved": moved, "missing": missing}


def trash_faces(ws: Workspace, side: Side, paths: Iterable[Path], *, by: str) -> list[str]:
    """Move face files of aligned/ to the trash (journalled, undoable); returns their names in the trash."""
    return move_faces(ws, side, [Path(p).name for p in paths], to_trash=True, by=by)["moved"]
