"""The extraction stage: options checked, resume state, the screen, then the frames run in order or in workers."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor
from typing import Optional

from ..config import ExtractConfig
from ..errors import InputError, NoFaceError, OptionError
from ..faces.identity import SAME_PERSON
from ..files import remove_temporaries
from ..choices import Side
from ..progress import Reporter
from ..workspace import Workspace
from .engine import Job, Result
from .hands import HandsResult, track_hands
from .layout import (STATE_NAME, ExtractState, check_side, faces_by_frame, read_rects, rects_for,
                     write_manual_fix)
from .screening import screen_todo
from .workers import run_here, run_pool, start_pool

SMALL_JOB = 150       # fewer frames run in this process (see benchmarks/extract.py), unless --workers N > 1
WARMUP = 10           # dst: frames before a resumed run that are re-read to warm up the smoothing


@dataclasses.dataclass
class ExtractSummary:
    side: str
    frames: int                       # frames in data_<side>/
    processed: int                    # frames worked on by this run
    skipped: int                      # frames already done (resume) or without a manual rectangle
    faces_written: int                # aligned faces written by this run
    faces_total: int                  # aligned faces of the side after the run
    no_face: list[str]                # frames of the side without a face (all runs)
    unreadable: list[str]             # frames this run could not read
    others: int = 0                   # faces skipped because they are not the --reference person
    manual_fix_file: Optional[Path] = None
    seconds: float = 0.0
    hands: Optional[HandsResult] = None  # the hands tracked over the faces (extract/hands.py), when asked

    def text(self) -> str:
        parts = [f"data_{self.side}: {self.faces_written} face(s) written from {self.processed} frame(s) "
                 f"in {self.seconds:.1f} s ({self.processed / max(self.seconds, 1e-9):.1f} frames/s)"]
        if self.skipped:
            parts.append(f"{self.skipped} frame(s) already done")
        parts.append(f"{self.faces_total} face(s) in aligned/")
        if self.others:
            parts.append(f"{self.others} face(s) of other people skipped")
        if self.no_face:
            parts.append(f"{len(self.no_face)} frame(s) without a face")
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable frame(s): {', '.join(self.unreadable[:10])}"
                         + (" ..." if len(self.unreadable) > 10 else ""))
        return "; ".join(parts) + "." + (f"\n{self.hands.text()}" if self.hands is not None and self.hands.faces else "")



def _check_compatible(ws: Workspace, side: Side, cfg: ExtractConfig, have_faces: bool) -> None:
    prev = ExtractConfig.saved_in(ws, side)
    if prev is None or not have_faces:
        return
    if (prev.face_type, prev.size) != (cfg.face_type, cfg.size):
        raise OptionError(
            f"{ws.aligned(side)} holds faces extracted with --face-type {prev.face_type} --size {prev.size}; "
            f"give the same options to resume, or move those faces away before extracting with "
            f"--face-type {cfg.face_type} --size {cfg.size}.")


def extract(ws: Workspace, side: Side, cfg: ExtractConfig | None = None, *,
            reporter: Reporter | None = None) -> ExtractSummary:
    """Extract aligned faces from the frames of data_<side>/ into data_<side>/aligned/ (resumes).

    Raises NoFaceError when no face at all was found in the side's frames."""
    cfg = cfg or ExtractConfig()
    return run_extract(ws, side, cfg, reporter or Reporter())


def run_extract(ws: Workspace, side: Side, cfg: ExtractConfig, rep: Reporter, *, only: Optional[list[str]] = None,
             rects: Optional[dict[str, list]] = None) -> ExtractSummary:
    check_side(side)
    ws.require()
    frames = ws.frame_files(side)
    if not frames:
        raise InputError(f"No frames in {ws.frames(side)}; run `facedouble video extract {side}` first "
                         "(or put JPEG/PNG images there).")
    if rects is None:
        rects = read_rects(cfg.rects) if cfg.rects else {}
    if cfg.detector == "manual" and not rects:
        raise OptionError("--detector manual needs --rects FILE: a JSON file of face rectangles per frame, "
                          'like {"000012.png": [[120, 80, 280, 260]]} (x0, y0, x1, y1 in frame pixels).')
    if not re.fullmatch(r"auto|cpu|mps|all|cuda(:\d+)?", (cfg.device or "auto").strip().lower()):
        raise OptionError(f"--device must be auto, cpu, cuda:N, mps or all, not {cfg.device!r}.")
    if cfg.target == "reference" and not cfg.reference:
        raise OptionError("--target reference needs --reference IMAGE (a photo of the person to keep).")
    if cfg.reference and not Path(cfg.reference).is_file():
        raise InputError(f"Reference photo {cfg.reference} does not exist; give the path of a photo of the person.")
    names = [p.name for p in frames]
    have = faces_by_frame(ws, side, names)
    _check_compatible(ws, side, cfg, bool(have))
    aligned = ws.aligned(side)
    aligned.mkdir(parents=True, exist_ok=True)
    remove_temporaries(aligned, ws.frames(side))  # what a killed run left
    debug_dir = ws.aligned_debug(side) if cfg.debug else None
    if debug_dir is not None:
        debug_dir.mkdir(parents=True, exist_ok=True)

    state = ExtractState.load(ws.frames(side) / STATE_NAME)
    if not have and state.done - state.no_face:
        state = ExtractState(state.path)             # aligned/ was emptied: start again
    if state.detector != cfg.detector:
        state.done -= state.no_face             # another detector: retry the frames where none was found
        state.no_face.clear()
    state.detector = cfg.detector
    if only is not None:
        wanted = set(only)
        todo = [p for p in frames if p.name in wanted]
    else:
        todo = [p for p in frames if p.name not in state.done and p.name not in have]
    if cfg.detector == "manual":
        todo = [p for p in todo if rects_for(rects, p.name) is not None]
    skipped = len(frames) - len(todo)
    workers = cfg.workers or os.cpu_count() or 1
    # worker processes pay off from a few hundred frames (each loads its models in ~3-5 s); --workers N > 1
    # asks for them whatever the count
    use_pool = workers > 1 and (cfg.workers > 1 or len(todo) >= SMALL_JOB)
    pool = start_pool(cfg, workers, side) if use_pool else None
    try:
        return _run(ws, side, cfg, rep, frames, names, todo, skipped, rects, state, debug_dir, pool, workers)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)



def _run(ws: Workspace, side: Side, cfg: ExtractConfig, rep: Reporter, frames: list[Path], names: list[str],
                 todo: list[Path], skipped: int, rects: dict, state: ExtractState, debug_dir: Optional[Path],
                 pool: Optional[ProcessPoolExecutor], workers: int) -> ExtractSummary:
    aligned = ws.aligned(side)
    from ..video.probe import frames_per_second

    screen_todo(todo, rep, frames_per_second(ws, side))
    cfg.save(ws.config_file(ExtractConfig, side))
    reference = None
    if cfg.reference:
        from ..faces.identity import reference_embedding

        reference = reference_embedding(cfg.reference, detector=cfg.detector, device=cfg.device)
    job = Job(side, cfg, aligned, debug_dir, cfg.device, reference, rects)

    start = time.perf_counter()
    written = others = processed = 0
    unreadable: list[str] = []
    first_error: list[str] = []
    last_save = time.monotonic()

    def record(res: Result) -> None:
        nonlocal written, others, processed, last_save
        processed += 1
        written += res.written
        others += res.others
        if res.status == "unreadable":
            unreadable.append(res.name)
            first_error[:] = first_error or [res.error or ""]
            state.unreadable.add(res.name)
        else:
            state.unreadable.discard(res.name)
            state.done.add(res.name)
            if res.status == "faces":
                state.no_face.discard(res.name)
            else:
                state.no_face.add(res.name)
        if time.monotonic() - last_save > 2.0:
            state.save()
            last_save = time.monotonic()

    position = {p.name: i + 1 for i, p in enumerate(frames)}
    if side == "src":
        items = [(p, position[p.name], False) for p in todo]
    else:
        items = _with_warmup(frames, todo, position)
    try:
        with rep.task(f"Extracting faces of data_{side}", len(todo)) as advance:
            if pool is not None:
                run_pool(pool, job, side, items, workers, rep, record, advance)
            else:
                run_here(job, side, items, rep, record, advance)
    finally:
        state.save()

    seconds = time.perf_counter() - start
    have = faces_by_frame(ws, side, names)
    faces_total = sum(len(v) for v in have.values())
    no_face = [n for n in names if n not in have and n in state.done]
    fix_file = write_manual_fix(ws, side, no_face) if cfg.manual_fix else None
    if unreadable:
        rep.warn(f"{len(unreadable)} frame(s) of data_{side} could not be read and were skipped: "
                 f"{', '.join(unreadable[:20])}{' ...' if len(unreadable) > 20 else ''}; replace or delete them"
                 + (f" (first: {first_error[0].rstrip('.')})." if first_error and first_error[0] else "."))
    readable = [n for n in names if n not in state.unreadable]
    if faces_total == 0 and readable and all(n in state.done for n in readable):
        if others:
            raise NoFaceError(f"Faces were found in data_{side} but none is the person of --reference {cfg.reference} "
                              f"(identity distance < {SAME_PERSON}); check the reference photo.")
        raise NoFaceError(f"No face was found in any of the {len(readable)} frames of data_{side} with --detector "
                          f"{cfg.detector}; try another detector (--detector {_other_detector(cfg.detector)}), or give "
                          "face rectangles with --detector manual --rects FILE.")
    hands = track_hands(ws, side, reporter=rep, frames=frames) if wants_hands(cfg, side) else None
    return ExtractSummary(side, len(frames), processed, skipped, written, faces_total, no_face, unreadable, others,
                          fix_file, seconds, hands)


def wants_hands(cfg: ExtractConfig, side: str) -> bool:
    """--hands / --no-hands as given; unset: src only (a faceset is a few hundred frames; dst can be hours)."""
    return bool(cfg.hands) if cfg.hands is not None else side == "src"


def _other_detector(name: str) -> str:
    return {"auto": "dlib-cnn", "mediapipe": "mt", "mt": "mediapipe", "dlib": "auto", "dlib-cnn": "auto"}.get(name, "auto")


def _with_warmup(frames: list[Path], todo: list[Path], position: dict[str, int]) -> list[tuple[Path, int, bool]]:
    """dst items in order; before each run of consecutive frames, up to WARMUP earlier frames (not written)
    so the smoothing and the target track start where they were."""
    out: list[tuple[Path, int, bool]] = []
    prev = None
    for p in todo:
        pos = position[p.name]
        if prev is None or pos != prev + 1:
            lo = max(1, pos - WARMUP)
            if prev is not None:
                lo = max(lo, prev + 1)
            out += [(frames[i - 1], i, True) for i in range(lo, pos)]
        out.append((p, pos, False))
        prev = pos
    return out
