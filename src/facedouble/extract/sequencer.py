"""dst as a sequence: one face per frame for the target person, its landmarks smoothed over time."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..faces.identity import SAME_PERSON, face_distance
from ..faces.track import OneEuroFilter, TargetTracker, is_cut
from .engine import Engine, Frame, Result

SMOOTH_MIN_CUTOFF = 0.5
SMOOTH_BETA = 10.0    # chosen on single_face.mp4 / WolfgangLanger_Pexels.mp4: jitter /3.9 and /2.4, little lag


class DstSequencer:
    """dst, in frame order: one target face per frame, smoothed landmarks, identity every N frames."""

    def __init__(self, engine: Engine) -> None:
        cfg, job = engine.cfg, engine.job
        self.engine, self.cfg = engine, cfg
        mode = cfg.target or ("reference" if job.reference is not None else "track")
        self.mode = mode
        self.tracker = TargetTracker(mode, reference=job.reference, max_distance=SAME_PERSON)
        self.smoother = OneEuroFilter(min_cutoff=SMOOTH_MIN_CUTOFF, beta=SMOOTH_BETA)
        self.prev_number: Optional[int] = None
        self.prev_thumb: Optional[np.ndarray] = None

    def _reset(self) -> None:
        self.tracker.reset()
        self.smoother.reset()
        self.engine.cache.reset()

    def step(self, fr: Frame) -> Optional[Result]:
        eng = self.engine
        if fr.error:
            self._reset()
            self.prev_number, self.prev_thumb = None, None
            return None if fr.warmup else Result(fr.name, "unreadable", error=fr.error)
        gap = None if self.prev_number is None else fr.number - self.prev_number
        if gap is None or not 0 < gap <= 3 or is_cut(self.prev_thumb, fr.thumb):
            self._reset()
            gap = 1
        self.prev_number, self.prev_thumb = fr.number, fr.thumb
        faces = [f for f in fr.faces if f.verified >= 1.0]
        if not faces and fr.faces:
            # only faces the verifier turned down: keep the one that continues the target (a face leaving the
            # frame, turned away, or covered), never start a track on one
            cont = self.tracker.continuing([f.rect for f in fr.faces])
            faces = [fr.faces[cont]] if cont is not None else []
        rects = [f.rect for f in faces]
        embeddings: list[Optional[tuple[np.ndarray, str]]] = [None] * len(faces)
        distances = None
        if self.mode == "reference":
            distances = []
            for i, f in enumerate(faces):
                embeddings[i] = eng.cache.get(fr.number, f.rect, fr.name, lambda f=f: eng.embed(fr.image, f.landmarks))
                distances.append(face_distance(embeddings[i][0], eng.job.reference))
        cont = self.tracker.continuing(rects)
        pick = self.tracker.choose(rects, [f.size for f in faces], distances)
        if pick is None:
            self.smoother.reset()
            if fr.warmup:
                return None
            eng.write_debug(fr, [])
            return Result(fr.name, "other" if faces and self.mode == "reference" else "noface", others=len(faces))
        if pick != cont:
            self.smoother.reset()
        face = faces[pick]
        lm = self.smoother(face.landmarks, face.size, gap) if self.cfg.smooth else face.landmarks
        if fr.warmup:
            return None
        if embeddings[pick] is None:
            embeddings[pick] = eng.cache.get(fr.number, face.rect, fr.name, lambda: eng.embed(fr.image, lm))
        emb, src = embeddings[pick]  # type: ignore[misc]
        extra: dict[str, Any] = {"smoothed": bool(self.cfg.smooth)}
        if face.verified < 1.0:
            extra["verified"] = round(face.verified, 3)     # kept because it continues the target's track
        if distances is not None:
            extra["reference_distance"] = round(distances[pick], 4)
        _, m = eng.write_face(fr, 0, face, lm, emb, src, extra)
        eng.write_debug(fr, [(face.rect, lm, m)])
        return Result(fr.name, "faces", written=1, others=len(faces) - 1)
