"""`facedouble xseg apply|remove src|dst`: write the trained XSeg model's mask into each face's record
(`FaceRecord.xseg_mask`, an 8-bit grey PNG of at most APPLIED_SIZE px, with the model's id), or remove it.

Apply resumes: a face whose stored mask came from the same model id is skipped. Records are rewritten
atomically with the pixels untouched; labels (include/exclude polygons) are never changed here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import InputError, MetadataError
from ..faces.container import read_face, read_record, update_record, xseg_mask_field
from ..progress import Reporter
from ..workspace import Workspace
from .network import XSegModel, load_xseg

APPLIED_SIZE = 256  # side of the stored mask (faces larger than this keep a mask of this size)
BATCH = 16


@dataclasses.dataclass
class ApplyResult:
    side: str
    written: int
    skipped: int          # already had this model's mask
    unreadable: list[str]
    model_id: str

    def summary(self) -> str:
        text = f"XSeg masks written into {self.written} {self.side} face(s) ({self.model_id})"
        text += f", {self.skipped} already had them" if self.skipped else ""
        if self.unreadable:
            text += f"; {len(self.unreadable)} unreadable face(s) left alone ({', '.join(self.unreadable[:5])})"
        return text + "."


def _faces(ws: Workspace, side: str) -> list[Path]:
    if side not in ("src", "dst"):
        raise InputError(f"Side must be src or dst, not {side!r}.")
    files = ws.face_files(side)  # type: ignore[arg-type]
    if not files:
        raise InputError(f"No aligned faces in {ws.aligned(side)}; extract the {side} faces first.")  # type: ignore[arg-type]
    return files


def apply_xseg(ws: Workspace, side: str, *, model: XSegModel | None = None,
               reporter: Reporter | None = None) -> ApplyResult:
    """Predict the XSeg mask of every face of `side` and store it in the face's record."""
    rep = reporter or Reporter()
    files = _faces(ws, side)
    model = model or load_xseg(ws.model)
    written = skipped = 0
    unreadable: list[str] = []
    todo: list[tuple[Path, object, object]] = []

    def flush() -> None:
        nonlocal written
        if not todo:
            return
        masks = model([img for _, img, _ in todo])  # type: ignore[misc]
        for (path, _, rec), m in zip(todo, masks):
            side_px = min(APPLIED_SIZE, m.shape[0])
            if m.shape[0] != side_px:
                import cv2

                m = cv2.resize(m, (side_px, side_px), interpolation=cv2.INTER_AREA)
            rec.xseg_mask = xseg_mask_field(m, model.model_id)  # type: ignore[attr-defined]
            update_record(path, rec)  # type: ignore[arg-type]
            written += 1
        todo.clear()

    for path in rep.track(files, f"XSeg apply {side}"):
        try:
            rec = read_record(path)
        except MetadataError:
            rec = None
        if rec is None:
            unreadable.append(path.name)
            continue
        if rec.xseg_mask is not None and rec.xseg_mask.get("model") == model.model_id:
            skipped += 1
            continue
        try:
            image, rec = read_face(path)
        except (MetadataError, InputError):
            unreadable.append(path.name)
            continue
        todo.append((path, image, rec))
        if len(todo) >= BATCH:
            flush()
    flush()
    return ApplyResult(side, written, skipped, unreadable, model.model_id)


@dataclasses.dataclass
class RemoveResult:
    side: str
    removed: int

    def summary(self) -> str:
        return f"XSeg masks removed from {self.removed} {self.side} face(s); labels kept."


def remove_xseg(ws: Workspace, side: str, *, reporter: Reporter | None = None) -> RemoveResult:
    """Remove the applied XSeg mask from every face of `side` (labels stay)."""
    rep = reporter or Reporter()
    removed = 0
    for path in rep.track(_faces(ws, side), f"XSeg remove {side}"):
        try:
            rec = read_record(path)
        except MetadataError:
            continue
        if rec is None or rec.xseg_mask is None:
            continue
        rec.xseg_mask = None
        update_record(path, rec)
        removed += 1
    return RemoveResult(side, removed)
