"""Manual fixes: re-extract the frames whose debug image the user deleted, and one face from a user rectangle
(the browser UI's manual mode); the debug image drawn again from the face records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..choices import Side
from ..config import ExtractConfig
from ..errors import InputError, MetadataError, OptionError
from ..faces import container
from ..faces.find import FoundFace
from ..progress import Reporter
from ..imagefile import read_rgb
from ..sort.trash import trash_faces
from ..workspace import Workspace
from .engine import Engine, Frame, Job, write_debug_image
from .layout import (MANUAL_FIX_NAME, STATE_NAME, ExtractState, check_side, debug_path, faces_by_frame,
                     read_rects, write_manual_fix)
from .screening import load_safety
from .stage import ExtractSummary, run_extract


def manual_fix_deleted(ws: Workspace, side: Side, cfg: ExtractConfig | None = None, *,
                       reporter: Reporter | None = None) -> ExtractSummary:
    """Re-extract the frames whose aligned_debug image the user deleted (the original's "manual fix deleted
    aligned debug"): their aligned faces move to aligned_trash/, and the frames are extracted again with the
    rectangles of `cfg.rects` where given (else with `cfg.detector`), writing new debug images."""
    cfg = (cfg or ExtractConfig()).override(debug=True)
    rep = reporter or Reporter()
    check_side(side)
    ws.require()
    debug_dir = ws.aligned_debug(side)
    if not debug_dir.is_dir() or not any(debug_dir.glob("*.jpg")):
        raise OptionError(f"--manual-fix-deleted needs the debug images of an earlier `facedouble extract {side} "
                          f"--debug` run, and {debug_dir} has none.")
    frames = ws.frame_files(side)
    names = [p.name for p in frames]
    have = faces_by_frame(ws, side, names)
    state = ExtractState.load(ws.frames(side) / STATE_NAME)
    worked = state.done | set(have)
    deleted = [n for n in names if n in worked and not debug_path(ws, side, n).exists()]
    if not deleted:
        rep.info(f"No debug image of data_{side} was deleted; nothing to re-extract.")
        return ExtractSummary(side, len(frames), 0, len(frames), 0, sum(len(v) for v in have.values()), [], [])
    for n in deleted:
        trash_faces(ws, side, have.get(n, []), by="extract --manual-fix-deleted")
        state.done.discard(n)
        state.no_face.discard(n)
    state.save()
    rects = read_rects(cfg.rects) if cfg.rects else {}
    detector_cfg = cfg if cfg.detector != "manual" or rects else cfg.override(detector="auto")
    summary = run_extract(ws, side, detector_cfg, rep, only=deleted, rects=rects)
    have = faces_by_frame(ws, side, names)
    missing = set(summary.no_face) | {n for n in deleted if n not in have}
    summary.no_face = [n for n in names if n in missing]
    summary.manual_fix_file = write_manual_fix(ws, side, summary.no_face)
    return summary


def extract_with_rect(ws: Workspace, side: Side, frame_name: str, rect: Sequence[float],
                      cfg: ExtractConfig | None = None) -> Path:
    """Extract one face of one frame from a user rectangle [x0, y0, x1, y1] (the browser UI's manual mode).

    dst: replaces the frame's face (one per frame); src: adds a face. Updates the debug image when the side
    has debug images, the done-list, and manual_fix.json. Returns the aligned face's path."""
    cfg = cfg or ExtractConfig.saved_in(ws, side) or ExtractConfig()
    check_side(side)
    ws.require()
    path = ws.frames(side) / frame_name
    if not path.is_file():
        raise InputError(f"Frame {path} does not exist; give the name of a frame in {ws.frames(side)}.")
    from ..faces.landmarks import landmarks_in_rect

    image = read_rgb(path)
    load_safety().screen_image(image, name=frame_name, what=f"data_{side}")  # before anything is written
    r = np.asarray(rect, np.float32).reshape(-1)
    lm = landmarks_in_rect(image, r)
    face = FoundFace(r, lm, 1.0, "manual")
    aligned = ws.aligned(side)
    aligned.mkdir(parents=True, exist_ok=True)
    existing = faces_by_frame(ws, side, [frame_name]).get(frame_name, [])
    if side == "dst":
        trash_faces(ws, side, existing, by="manual extraction")
        index = 0
    else:
        used = {int(p.stem.rpartition("_")[2]) for p in existing if p.stem.rpartition("_")[2].isdigit()}
        index = next(i for i in range(len(used) + 1) if i not in used)
    debug_dir = ws.aligned_debug(side)
    has_debug = cfg.debug or debug_path(ws, side, frame_name).exists() or (debug_dir.is_dir() and any(debug_dir.glob("*.jpg")))
    job = Job(side, cfg, aligned, None, "cpu", None, {})
    eng = Engine(job)
    fr = Frame(frame_name, 0, False, image)
    emb = eng.embed(image, lm)
    out, _ = eng.write_face(fr, index, face, lm, emb, frame_name, {"manual": True})
    if has_debug:
        redraw_debug(ws, side, frame_name, image)
    state = ExtractState.load(ws.frames(side) / STATE_NAME)
    state.done.add(frame_name)
    state.no_face.discard(frame_name)
    state.save()
    fix = ws.frames(side) / MANUAL_FIX_NAME
    if fix.is_file():
        try:
            listed = json.loads(fix.read_text(encoding="utf-8")).get("frames", [])
        except (OSError, ValueError, AttributeError):
            listed = []
        write_manual_fix(ws, side, [n for n in listed if n != frame_name])
    return out


def redraw_debug(ws: Workspace, side: Side, frame_name: str, image: Optional[np.ndarray] = None) -> Path:
    """Draw the debug image of a frame again from the records of its aligned faces."""
    if image is None:
        image = read_rgb(ws.frames(side) / frame_name)
    drawn, size = [], 512
    for p in sorted(faces_by_frame(ws, side, [frame_name]).get(frame_name, [])):
        try:
            rec = container.read_record(p)
        except MetadataError:
            continue
        if rec is not None:
            drawn.append((np.asarray(rec.source_rect, np.float32), rec.source_landmarks, rec.matrix))
            size = rec.size
    out = debug_path(ws, side, frame_name)
    write_debug_image(out, image, drawn, size)
    return out

