"""The work of one process on one frame: detect, fit landmarks, align and write the faces (and the debug image).
The models load on first use; worker processes keep one Engine each (extract/workers.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..config import ExtractConfig
from ..errors import InputError
from ..faces import align, container
from ..faces.find import FaceFinder, FoundFace
from ..faces.identity import SAME_PERSON, face_distance
from ..faces.landmarks import NAME as LANDMARKER_NAME
from ..faces.pose import pose_angles
from ..faces.track import is_cut, thumbnail
from ..imagefile import read_rgb
from .layout import face_name, rects_for


@dataclasses.dataclass
class Job:
    """Everything a worker needs (picklable)."""

    side: str
    cfg: ExtractConfig
    aligned: Path
    debug: Optional[Path]
    device: str
    reference: Optional[np.ndarray]
    rects: dict[str, list]


@dataclasses.dataclass
class Frame:
    name: str
    number: int
    warmup: bool
    image: Optional[np.ndarray] = None
    faces: list[FoundFace] = dataclasses.field(default_factory=list)
    thumb: Optional[np.ndarray] = None
    error: Optional[str] = None


@dataclasses.dataclass
class Result:
    name: str
    status: str            # faces | noface | other | unreadable
    written: int = 0
    others: int = 0
    error: Optional[str] = None


@dataclasses.dataclass
class _Track:
    rect: np.ndarray
    seen: int
    computed_at: int
    embedding: np.ndarray
    source: str


class IdentityCache:
    """Identity embeddings per face track: computed once every `every` frames of a track, reused between."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.tracks: list[_Track] = []

    def reset(self) -> None:
        self.tracks.clear()

    def get(self, number: int, rect: np.ndarray, name: str, compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, str]:
        from ..faces.detect import iou

        self.tracks = [t for t in self.tracks if 0 <= number - t.seen <= 3]
        match = max(self.tracks, key=lambda t: iou(t.rect, rect), default=None)
        if match is not None and (iou(match.rect, rect) < 0.4 or match.seen == number):
            match = None
        if match is not None and number - match.computed_at < self.every:
            match.rect, match.seen = rect, number
            return match.embedding, match.source
        emb = compute()
        if match is None:
            match = _Track(rect, number, number, emb, name)
            self.tracks.append(match)
        match.rect, match.seen, match.computed_at, match.embedding, match.source = rect, number, number, emb, name
        return emb, name


class Engine:
    """The models and the writing of one process."""

    def __init__(self, job: Job, finder: Optional[FaceFinder] = None) -> None:
        self.job, self.cfg = job, job.cfg
        self._finder = finder     # a finder already loaded (a worker's, at start), else made on first use
        self._encoder = None
        self.cache = IdentityCache(job.cfg.identity_every)
        self._prev_thumb: Optional[np.ndarray] = None
        self._prev_number: Optional[int] = None

    @property
    def finder(self) -> FaceFinder:
        if self._finder is None:
            self._finder = FaceFinder(self.cfg.detector, device=self.job.device, detect_size=self.cfg.detect_size)
        return self._finder

    @property
    def encoder(self):
        if self._encoder is None:
            from ..faces.identity import default_encoder

            self._encoder = default_encoder()
        return self._encoder

    # -- analysis --------------------------------------------------------------------------------------
    def analyse(self, path: Path, number: int, warmup: bool = False) -> Frame:
        fr = Frame(path.name, number, warmup)
        try:
            image = read_rgb(path)
        except InputError as e:
            fr.error = e.message
            return fr
        fr.image, fr.thumb = image, thumbnail(image)
        rects = rects_for(self.job.rects, path.name)
        if rects is not None:
            fr.faces = self.finder_manual().in_rects(image, rects)
        elif self.cfg.detector != "manual":
            fr.faces = self.finder.find(image, with_rejected=self.job.side == "dst")
        return fr

    def finder_manual(self) -> FaceFinder:
        if self.cfg.detector == "manual":
            return self.finder
        if not hasattr(self, "_manual"):
            self._manual = FaceFinder("manual", landmarker=self.finder.landmarker)
        return self._manual

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.encoder(image, landmarks)

    # -- writing -----------------------------------------------------------------------------------------
    def write_face(self, fr: Frame, index: int, face: FoundFace, landmarks: np.ndarray, identity: Optional[np.ndarray],
                   identity_from: str, extra: dict[str, Any] | None = None) -> tuple[Path, np.ndarray]:
        cfg, image = self.cfg, fr.image
        assert image is not None
        h, w = image.shape[:2]
        m = align.face_matrix(landmarks, cfg.face_type, cfg.size)
        face_img = align.warp_to_face(image, m, cfg.size)
        yaw, pitch, roll = pose_angles(landmarks, (w, h))
        info: dict[str, Any] = {"yaw": round(yaw, 3), "pitch": round(pitch, 3), "roll": round(roll, 3),
                                "score": round(float(face.score), 4)}
        if face.rotation:
            info["rotation"] = face.rotation
        if identity is not None:
            info["identity_from"] = identity_from
        info.update(extra or {})
        rect = tuple(int(round(float(v))) for v in face.rect)
        record = container.FaceRecord(
            face_type=cfg.face_type, size=cfg.size,
            landmarks=align.transform_points(landmarks, m), source_landmarks=np.asarray(landmarks, np.float32),
            matrix=m, source_filename=fr.name, source_rect=rect, source_size=(w, h),  # type: ignore[arg-type]
            face_index=index, detector=face.detector, landmarker=LANDMARKER_NAME,
            identity=None if identity is None else np.asarray(identity, np.float32), extra=info)
        path = self.job.aligned / face_name(fr.name, index)
        container.write_face(path, face_img, record, cfg.jpeg_quality)
        return path, m

    def write_debug(self, fr: Frame, drawn: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        if self.job.debug is None or fr.image is None:
            return
        write_debug_image(self.job.debug / f"{Path(fr.name).stem}.jpg", fr.image, drawn, self.cfg.size)

    # -- src: everything per frame -------------------------------------------------------------------------
    def src_frame(self, path: Path, number: int) -> Result:
        fr = self.analyse(path, number)
        if fr.error:
            return Result(fr.name, "unreadable", error=fr.error)
        if self._prev_number is None or number != self._prev_number + 1 or is_cut(self._prev_thumb, fr.thumb):
            self.cache.reset()
        self._prev_number, self._prev_thumb = number, fr.thumb
        kept, others = [], 0
        for face in fr.faces:
            emb, src = self.cache.get(number, face.rect, fr.name, lambda f=face: self.embed(fr.image, f.landmarks))
            if self.job.reference is not None and face_distance(emb, self.job.reference) >= SAME_PERSON:
                others += 1
                continue
            kept.append((face, emb, src))
        if self.cfg.max_faces:
            kept = kept[:self.cfg.max_faces]
        drawn = []
        for i, (face, emb, src) in enumerate(kept):
            extra = {}
            if self.job.reference is not None:
                extra["reference_distance"] = round(face_distance(emb, self.job.reference), 4)
            _, m = self.write_face(fr, i, face, face.landmarks, emb, src, extra)
            drawn.append((face.rect, face.landmarks, m))
        self.write_debug(fr, drawn)
        status = "faces" if kept else ("other" if others else "noface")
        return Result(fr.name, status, written=len(kept), others=others)


def write_debug_image(path: Path, image: np.ndarray, drawn: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                      size: int) -> None:
    """The frame with each face's box (green), 68 landmarks (eyes and mouth red, others cyan) and the
    outline of the aligned crop (yellow); 'no face' when there is none. JPEG, atomic."""
    import cv2

    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    h, w = canvas.shape[:2]
    thick = max(1, round(max(h, w) / 640))
    for rect, lm, m in drawn:
        x0, y0, x1, y1 = (int(round(float(v))) for v in rect)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 255, 0), thick, cv2.LINE_AA)
        outline = np.round(align.crop_outline(m, size) * 16).astype(np.int32)
        cv2.polylines(canvas, [outline], True, (0, 255, 255), thick, cv2.LINE_AA, shift=4)
        for i, (x, y) in enumerate(np.asarray(lm)):
            colour = (0, 0, 255) if i >= 36 else (255, 255, 0)
            cv2.circle(canvas, (int(round(x * 16)), int(round(y * 16))), (thick + 1) * 16, colour, -1, cv2.LINE_AA, shift=4)
    if not drawn:
        cv2.putText(canvas, "no face", (10, 30 * thick), cv2.FONT_HERSHEY_SIMPLEX, thick, (0, 0, 255), thick + 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if ok:
        path.parent.mkdir(parents=True, exist_ok=True)
        container.atomic_write_bytes(path, buf.tobytes())

