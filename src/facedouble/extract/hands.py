"""Hands in front of a side's faces: MediaPipe Hands tracked through the side's frames in order, and each face
record keeping the hands that cover part of its face (`record.extra["hands"]`: 21 points per hand, frame
pixels; an empty list when none does). Training leaves them out of the face's training mask
(train/samples.py), so a hand held over the mouth is not learned as part of the face.

`facedouble extract` runs it after the src faces are written (`--no-hands` skips it; dst only with `--hands`). Tracking needs the
frames in order (a hand found once is followed from frame to frame; single-frame detection misses most hands
held against a face), so it runs in one pass over the frames that have faces, after the workers are done.
Frames whose faces were all checked already are skipped, so a resumed or repeated extraction only tracks the
new ones (the tracker restarts where frames were skipped)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import InputError, MetadataError
from ..faces.container import read_record, update_record
from ..faces.record import HANDS_KEY, FaceRecord, hands_of
from ..faces.regions import hand_mask, hull_mask
from ..imagefile import read_rgb
from ..progress import Reporter
from ..workspace import Workspace

MIN_COVER = 0.01   # a hand is kept for a face when its (grown) hull covers at least this share of the face's hull
MASK_SIDE = 64     # side of the coarse face square in which the cover is measured


@dataclasses.dataclass
class HandsResult:
    side: str
    faces: int          # faces whose hands were looked for by this run
    covered: int        # of those, faces with a hand over them
    skipped: int        # faces checked by an earlier run
    seconds: float = 0.0

    def text(self) -> str:
        done = f"{self.skipped} already checked; " if self.skipped else ""
        return (f"data_{self.side}: hands tracked for {self.faces} face(s) in {self.seconds:.1f} s; {done}"
                f"{self.covered} face(s) with a hand over them, left out of their training mask.")


def covering(hands: Sequence[np.ndarray], record: FaceRecord, min_cover: float = MIN_COVER) -> list[np.ndarray]:
    """The hands (frame pixels) whose grown hull covers at least `min_cover` of the face's landmark hull."""
    if not hands:
        return []
    k = MASK_SIDE / float(max(record.size, 1))
    m = np.asarray(record.matrix, np.float64) * k  # frame px -> a coarse copy of the aligned square
    face = hull_mask(np.asarray(record.landmarks, np.float64) * k, (MASK_SIDE, MASK_SIDE))
    area = max(float(face.sum()), 1e-6)
    return [h for h in hands if float((hand_mask([h], m, MASK_SIDE) * face).sum()) / area >= min_cover]


def _checked(path: Path) -> tuple[FaceRecord | None, bool]:
    try:
        rec = read_record(path)
    except MetadataError:
        return None, False
    return rec, rec is not None and hands_of(rec) is not None


def track_hands(ws: Workspace, side: str, *, reporter: Reporter | None = None,
                tracker_factory: Callable[[], Callable[[np.ndarray], list]] | None = None,
                frames: Iterable[Path] | None = None) -> HandsResult:
    """Track the hands through the side's frames in order and store in each face record the hands over its face.
    `tracker_factory` makes the tracker (MediaPipe Hands in video mode by default; tests pass their own)."""
    rep = reporter or Reporter()
    started = time.monotonic()
    by_frame: dict[str, list[tuple[Path, FaceRecord]]] = {}
    skipped = 0
    for path in ws.face_files(side):  # type: ignore[arg-type]
        rec, done = _checked(path)
        if rec is None:
            continue
        if done:
            skipped += 1
            continue
        by_frame.setdefault(rec.source_filename, []).append((path, rec))
    todo = [f for f in (frames if frames is not None else ws.frame_files(side)) if f.name in by_frame]  # type: ignore[arg-type]
    if not todo:
        return HandsResult(side, 0, 0, skipped, time.monotonic() - started)
    if tracker_factory is None:
        from ..faces.mesh import HandTracker

        tracker_factory = lambda: HandTracker(video=True)  # noqa: E731
    tracker = tracker_factory()
    faces = covered = 0
    try:
        for frame in rep.track(todo, f"hands {side}"):
            try:
                image = read_rgb(frame)
            except InputError:
                continue
            hands = tracker(image)
            for path, rec in by_frame[frame.name]:
                over = covering(hands, rec)
                rec.extra[HANDS_KEY] = [np.round(h, 1).tolist() for h in over]
                update_record(path, rec)
                faces += 1
                covered += bool(over)
    finally:
        close = getattr(tracker, "close", None)
        if close is not None:
            close()
    return HandsResult(side, faces, covered, skipped, time.monotonic() - started)
