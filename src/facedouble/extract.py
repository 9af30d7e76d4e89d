"""The face extraction stage: frames of data_<side>/ -> aligned faces in data_<side>/aligned/.

For each frame: detect faces (retried on the frame turned 90/180/270 degrees when none is found), fit 68
landmarks, align (faces/align.py), and write `<frame>_<i>.jpg` with its FaceRecord inside (meta.write_face):
frame-to-face matrix, landmarks in both spaces, detector box, frame size, detector and landmarker names,
a 128-d identity embedding and the head pose (extra: yaw, pitch, roll).

A detection counts only when the face cut out upright from its landmarks passes a verifier (faces/mtcnn.py
FaceVerifier), which removes the faces detectors see in titles, clouds and turned frames.

- src frames are independent: worker processes (one detector + landmarker each) do everything.
- dst is a sequence: workers detect and fit landmarks; this process then, in frame order, keeps one face
  per frame for the target person (TargetTracker), smooths its landmarks over time (One-Euro filter, reset
  on cuts and when the track is lost), and writes it. A face the verifier turned down is kept only when it
  continues the target's track (a face leaving the frame).
- Fewer than SMALL_JOB frames run in this process (starting workers costs a few seconds), unless
  `--workers N` (N > 1) is given. With `spawn` workers, a script calling `extract` must guard its entry point
  with `if __name__ == "__main__":` (as every multiprocessing program on macOS and Windows must).

Resumable: frames that already have faces, and frames listed in data_<side>/extract_state.json (done, with
or without a face), are skipped; the options are saved to data_<side>/extract.json. Explicit content is
screened for before any face is extracted (safety.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import time
from collections import defaultdict
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from .files import remove_temporaries
from .choices import Side, values
from .config import ExtractConfig, write_json_atomic
from .errors import FaceDoubleError, InputError, MetadataError, NoFaceError, OptionError
from .faces import align, meta
from .faces.find import FaceFinder, FoundFace
from .faces.identity import SAME_PERSON, face_distance
from .faces.landmarks import NAME as LANDMARKER_NAME
from .faces.pose import pose_angles
from .faces.track import OneEuroFilter, TargetTracker, is_cut, thumbnail
from .imagefile import decode_file
from .progress import Reporter
from .workspace import Workspace

CONFIG_NAME = "extract.json"
STATE_NAME = "extract_state.json"
MANUAL_FIX_NAME = "manual_fix.json"
SMALL_JOB = 150       # fewer frames run in this process (see benchmarks/extract.py), unless --workers N > 1
CHUNK = 8             # frames per task sent to a worker
WARMUP = 10           # dst: frames before a resumed run that are re-read to warm up the smoothing
SMOOTH_MIN_CUTOFF = 0.5
SMOOTH_BETA = 10.0    # chosen on single_face.mp4 / WolfgangLanger_Pexels.mp4: jitter /3.9 and /2.4, little lag


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
        return "; ".join(parts) + "."


# -- files of a side ------------------------------------------------------------------------------------

def _check_side(side: str) -> None:
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
            rec = meta.read_record(p)
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


def _rects_for(rects: dict[str, list], name: str) -> Optional[list]:
    return rects.get(name, rects.get(Path(name).stem))


@dataclasses.dataclass
class _State:
    """data_<side>/extract_state.json: frames already worked on, so a re-run skips them (also those with no
    face, and those whose faces the user deleted on purpose)."""

    path: Path
    detector: str = ""
    done: set[str] = dataclasses.field(default_factory=set)
    no_face: set[str] = dataclasses.field(default_factory=set)
    unreadable: set[str] = dataclasses.field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> "_State":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(path, str(data.get("detector", "")), set(data.get("done", [])), set(data.get("no_face", [])),
                       set(data.get("unreadable", [])))
        except (OSError, ValueError, AttributeError, TypeError):
            return cls(path)

    def save(self) -> None:
        write_json_atomic(self.path, {"detector": self.detector, "done": sorted(self.done),
                                      "no_face": sorted(self.no_face), "unreadable": sorted(self.unreadable)})


# -- per-process work -----------------------------------------------------------------------------------

@dataclasses.dataclass
class _Job:
    """Everything a worker needs (picklable)."""

    side: str
    cfg: ExtractConfig
    aligned: Path
    debug: Optional[Path]
    device: str
    reference: Optional[np.ndarray]
    rects: dict[str, list]


@dataclasses.dataclass
class _Frame:
    name: str
    number: int
    warmup: bool
    image: Optional[np.ndarray] = None
    faces: list[FoundFace] = dataclasses.field(default_factory=list)
    thumb: Optional[np.ndarray] = None
    error: Optional[str] = None


@dataclasses.dataclass
class _Result:
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


class _IdentityCache:
    """Identity embeddings per face track: computed once every `every` frames of a track, reused between."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.tracks: list[_Track] = []

    def reset(self) -> None:
        self.tracks.clear()

    def get(self, number: int, rect: np.ndarray, name: str, compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, str]:
        from .faces.detect import iou

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


def read_frame(path: Path) -> np.ndarray:
    """A frame as RGB uint8 HWC (grey-scale, 16-bit and RGBA converted); InputError if unreadable."""
    import cv2

    arr = decode_file(path)
    if arr is None:
        raise InputError(f"Frame {path} is not a readable image; replace or delete it.")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


class _Engine:
    """The models and the writing of one process."""

    def __init__(self, job: _Job) -> None:
        self.job, self.cfg = job, job.cfg
        self._finder: Optional[FaceFinder] = None
        self._encoder = None
        self.cache = _IdentityCache(job.cfg.identity_every)
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
            from .faces.identity import default_encoder

            self._encoder = default_encoder()
        return self._encoder

    # -- analysis --------------------------------------------------------------------------------------
    def analyse(self, path: Path, number: int, warmup: bool = False) -> _Frame:
        fr = _Frame(path.name, number, warmup)
        try:
            image = read_frame(path)
        except InputError as e:
            fr.error = e.message
            return fr
        fr.image, fr.thumb = image, thumbnail(image)
        rects = _rects_for(self.job.rects, path.name)
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
    def write_face(self, fr: _Frame, index: int, face: FoundFace, landmarks: np.ndarray, identity: Optional[np.ndarray],
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
        record = meta.FaceRecord(
            face_type=cfg.face_type, size=cfg.size,
            landmarks=align.transform_points(landmarks, m), source_landmarks=np.asarray(landmarks, np.float32),
            matrix=m, source_filename=fr.name, source_rect=rect, source_size=(w, h),  # type: ignore[arg-type]
            face_index=index, detector=face.detector, landmarker=LANDMARKER_NAME,
            identity=None if identity is None else np.asarray(identity, np.float32), extra=info)
        path = self.job.aligned / face_name(fr.name, index)
        meta.write_face(path, face_img, record, cfg.jpeg_quality)
        return path, m

    def write_debug(self, fr: _Frame, drawn: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        if self.job.debug is None or fr.image is None:
            return
        write_debug_image(self.job.debug / f"{Path(fr.name).stem}.jpg", fr.image, drawn, self.cfg.size)

    # -- src: everything per frame -------------------------------------------------------------------------
    def src_frame(self, path: Path, number: int) -> _Result:
        fr = self.analyse(path, number)
        if fr.error:
            return _Result(fr.name, "unreadable", error=fr.error)
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
        return _Result(fr.name, status, written=len(kept), others=others)


class _DstSequencer:
    """dst, in frame order: one target face per frame, smoothed landmarks, identity every N frames."""

    def __init__(self, engine: _Engine) -> None:
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

    def step(self, fr: _Frame) -> Optional[_Result]:
        eng = self.engine
        if fr.error:
            self._reset()
            self.prev_number, self.prev_thumb = None, None
            return None if fr.warmup else _Result(fr.name, "unreadable", error=fr.error)
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
            return _Result(fr.name, "other" if faces and self.mode == "reference" else "noface", others=len(faces))
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
        return _Result(fr.name, "faces", written=1, others=len(faces) - 1)


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
        meta.atomic_write_bytes(path, buf.tobytes())


# -- worker processes -------------------------------------------------------------------------------------

_ENGINE: Optional[_Engine] = None
_FINDER: Optional[FaceFinder] = None


def _worker_engine(job: _Job) -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine(job)
        if _FINDER is not None and _FINDER.detector_name == job.cfg.detector:
            _ENGINE._finder = _FINDER
    return _ENGINE


def _init_worker(detector: str, device: str, detect_size: int, identity: bool) -> None:
    """Worker start: Ctrl-C is left to the main process (which stops cleanly), one thread each, and the
    models are loaded at once, while the main process screens the frames."""
    global _FINDER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .native_logs import silence

    silence()  # the detectors' native log lines (mediapipe) stay out of the output
    import cv2

    cv2.setNumThreads(1)
    if detector not in ("manual",) or identity:
        import torch

        torch.set_num_threads(1)
    try:
        _FINDER = FaceFinder(detector, device=device, detect_size=detect_size)
        if identity:
            from .faces.identity import default_encoder

            default_encoder()
    except FaceDoubleError:
        _FINDER = None      # the same error is raised again, with its message, by the first task


def _warm() -> int:
    return os.getpid()


def _task_src(job: _Job, items: list[tuple[Path, int, bool]]) -> list[_Result]:
    eng = _worker_engine(job)
    return [eng.src_frame(path, number) for path, number, _ in items]


def _task_dst(job: _Job, items: list[tuple[Path, int, bool]]) -> list[_Frame]:
    eng = _worker_engine(job)
    return [eng.analyse(path, number, warmup) for path, number, warmup in items]


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _ordered(pool: ProcessPoolExecutor, fn: Callable, job: _Job, chunks: list[list], depth: int) -> Iterator[list]:
    """Results of fn(job, chunk) in order, with at most `depth` chunks in flight (bounded memory)."""
    pending: list[Future] = []
    it = iter(chunks)
    for chunk in it:
        pending.append(pool.submit(fn, job, chunk))
        if len(pending) >= depth:
            break
    while pending:
        done = pending.pop(0)
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.submit(fn, job, nxt))
        yield done.result()


# -- the stage ---------------------------------------------------------------------------------------------

def _readable(path: Path) -> bool:
    try:
        read_frame(path)
        return True
    except InputError:
        return False


def _safety():
    import importlib

    try:
        return importlib.import_module(f"{__package__}.safety")
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.safety":
            raise
        raise FaceDoubleError("The explicit-content screen (facedouble.safety) is missing from this installation; "
                              "reinstall facedouble (extraction cannot run without it).") from None


def _screen(paths: list[Path], reporter: Reporter, fps: Optional[float] = None) -> None:
    """Explicit-content screen of the frames about to be extracted (safety.py raises SafetyError; there is no
    option to skip it): at least one frame per second of footage when `fps` (the frames' rate) is known. The
    screen refuses unreadable files, which extraction skips and lists instead, so a sampled frame that cannot
    be read is replaced by the nearest readable one."""
    if not paths:
        return
    safety = _safety()
    paths = list(paths)
    seen: dict[Path, bool] = {}

    def ok(p: Path) -> bool:
        if p not in seen:
            seen[p] = _readable(p)
        return seen[p]

    policy = getattr(safety, "DEFAULT_POLICY", None)
    times = safety.frame_times(paths, fps) if hasattr(safety, "frame_times") else None
    picked = list(policy.pick(len(paths), times)) if policy is not None else list(range(len(paths)))
    for i in picked:
        if ok(paths[i]):
            continue
        for d in range(1, len(paths)):
            near = [j for j in (i - d, i + d) if 0 <= j < len(paths)]
            if not near:
                break
            good = next((j for j in near if ok(paths[j])), None)
            if good is not None:
                paths[i] = paths[good]
                break
    if not any(ok(paths[i]) for i in picked):
        return          # not one readable frame: each is skipped and listed as unreadable
    safety.screen_frames(paths, reporter=reporter, fps=fps)


def _saved_config(ws: Workspace, side: Side) -> Optional[ExtractConfig]:
    path = ws.frames(side) / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        return ExtractConfig.load(path)
    except FaceDoubleError:
        return None


def _check_compatible(ws: Workspace, side: Side, cfg: ExtractConfig, have_faces: bool) -> None:
    prev = _saved_config(ws, side)
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
    return _extract(ws, side, cfg, reporter or Reporter())


def _extract(ws: Workspace, side: Side, cfg: ExtractConfig, rep: Reporter, *, only: Optional[list[str]] = None,
             rects: Optional[dict[str, list]] = None) -> ExtractSummary:
    _check_side(side)
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

    state = _State.load(ws.frames(side) / STATE_NAME)
    if not have and state.done - state.no_face:
        state = _State(state.path)             # aligned/ was emptied: start again
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
        todo = [p for p in todo if _rects_for(rects, p.name) is not None]
    skipped = len(frames) - len(todo)
    workers = cfg.workers or os.cpu_count() or 1
    # worker processes pay off from a few hundred frames (each loads its models in ~3-5 s); --workers N > 1
    # asks for them whatever the count
    use_pool = workers > 1 and (cfg.workers > 1 or len(todo) >= SMALL_JOB)
    pool = _start_pool(cfg, workers, side) if use_pool else None
    try:
        return _extract_run(ws, side, cfg, rep, frames, names, todo, skipped, rects, state, debug_dir, pool, workers)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _start_pool(cfg: ExtractConfig, workers: int, side: str) -> ProcessPoolExecutor:
    """Worker processes, started now so that they load their models while this process screens the frames.
    spawn: the same on every OS, and no forked copies of this process's threads."""
    import multiprocessing as mp

    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(cfg.detector, cfg.device, cfg.detect_size, side == "src"))
    for _ in range(workers):
        pool.submit(_warm)
    return pool


def _extract_run(ws: Workspace, side: Side, cfg: ExtractConfig, rep: Reporter, frames: list[Path], names: list[str],
                 todo: list[Path], skipped: int, rects: dict, state: _State, debug_dir: Optional[Path],
                 pool: Optional[ProcessPoolExecutor], workers: int) -> ExtractSummary:
    aligned = ws.aligned(side)
    from .video.probe import frames_per_second

    _screen(todo, rep, frames_per_second(ws, side))
    cfg.save(ws.frames(side) / CONFIG_NAME)
    reference = None
    if cfg.reference:
        from .faces.identity import reference_embedding

        reference = reference_embedding(cfg.reference, detector=cfg.detector, device=cfg.device)
    job = _Job(side, cfg, aligned, debug_dir, cfg.device, reference, rects)

    start = time.perf_counter()
    written = others = processed = 0
    unreadable: list[str] = []
    first_error: list[str] = []
    last_save = time.monotonic()

    def record(res: _Result) -> None:
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
                _run_pool(pool, job, side, items, workers, rep, record, advance)
            else:
                _run_here(job, side, items, rep, record, advance)
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
    return ExtractSummary(side, len(frames), processed, skipped, written, faces_total, no_face, unreadable, others,
                          fix_file, seconds)


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


def _run_here(job: _Job, side: str, items: list, rep: Reporter, record: Callable[[_Result], None],
              advance: Callable[[int], None]) -> None:
    eng = _Engine(job)
    seq = _DstSequencer(eng) if side == "dst" else None
    for path, number, warmup in items:
        rep.check()
        if seq is None:
            res: Optional[_Result] = eng.src_frame(path, number)
        else:
            res = seq.step(eng.analyse(path, number, warmup))
        if res is not None:
            record(res)
            advance(1)


def _run_pool(pool: ProcessPoolExecutor, job: _Job, side: str, items: list, workers: int, rep: Reporter,
              record: Callable[[_Result], None], advance: Callable[[int], None]) -> None:
    chunks = _chunks(items, CHUNK)
    if side == "src":
        for results in _ordered(pool, _task_src, job, chunks, depth=2 * workers + 1):
            for res in results:
                rep.check()
                record(res)
                advance(1)
    else:
        eng = _Engine(job)     # this process: target choice, smoothing, identity, writing
        seq = _DstSequencer(eng)
        for frames in _ordered(pool, _task_dst, job, chunks, depth=2 * workers):
            for fr in frames:
                rep.check()
                res = seq.step(fr)
                if res is not None:
                    record(res)
                    advance(1)


# -- manual fixes --------------------------------------------------------------------------------------------

def write_manual_fix(ws: Workspace, side: Side, frames: list[str]) -> Path:
    """data_<side>/manual_fix.json: the frames without a face, for the browser UI's manual mode."""
    path = ws.frames(side) / MANUAL_FIX_NAME
    write_json_atomic(path, {"side": side, "count": len(frames), "frames": frames})
    return path


def _trash(ws: Workspace, side: Side, paths: Iterable[Path]) -> None:
    trash = ws.aligned_trash(side)
    trash.mkdir(parents=True, exist_ok=True)
    for p in paths:
        dest = trash / p.name
        n = 1
        while dest.exists():
            dest = trash / f"{p.stem}.{n}{p.suffix}"
            n += 1
        shutil.move(str(p), dest)


def manual_fix_deleted(ws: Workspace, side: Side, cfg: ExtractConfig | None = None, *,
                       reporter: Reporter | None = None) -> ExtractSummary:
    """Re-extract the frames whose aligned_debug image the user deleted (the original's "manual fix deleted
    aligned debug"): their aligned faces move to aligned_trash/, and the frames are extracted again with the
    rectangles of `cfg.rects` where given (else with `cfg.detector`), writing new debug images."""
    cfg = (cfg or ExtractConfig()).override(debug=True)
    rep = reporter or Reporter()
    _check_side(side)
    ws.require()
    debug_dir = ws.aligned_debug(side)
    if not debug_dir.is_dir() or not any(debug_dir.glob("*.jpg")):
        raise OptionError(f"--manual-fix-deleted needs the debug images of an earlier `facedouble extract {side} "
                          f"--debug` run, and {debug_dir} has none.")
    frames = ws.frame_files(side)
    names = [p.name for p in frames]
    have = faces_by_frame(ws, side, names)
    state = _State.load(ws.frames(side) / STATE_NAME)
    worked = state.done | set(have)
    deleted = [n for n in names if n in worked and not debug_path(ws, side, n).exists()]
    if not deleted:
        rep.info(f"No debug image of data_{side} was deleted; nothing to re-extract.")
        return ExtractSummary(side, len(frames), 0, len(frames), 0, sum(len(v) for v in have.values()), [], [])
    for n in deleted:
        _trash(ws, side, have.get(n, []))
        state.done.discard(n)
        state.no_face.discard(n)
    state.save()
    rects = read_rects(cfg.rects) if cfg.rects else {}
    detector_cfg = cfg if cfg.detector != "manual" or rects else cfg.override(detector="auto")
    summary = _extract(ws, side, detector_cfg, rep, only=deleted, rects=rects)
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
    cfg = cfg or _saved_config(ws, side) or ExtractConfig()
    _check_side(side)
    ws.require()
    path = ws.frames(side) / frame_name
    if not path.is_file():
        raise InputError(f"Frame {path} does not exist; give the name of a frame in {ws.frames(side)}.")
    from .faces.landmarks import landmarks_in_rect

    image = read_frame(path)
    _safety().screen_image(image, name=frame_name, what=f"data_{side}")  # before anything is written
    r = np.asarray(rect, np.float32).reshape(-1)
    lm = landmarks_in_rect(image, r)
    face = FoundFace(r, lm, 1.0, "manual")
    aligned = ws.aligned(side)
    aligned.mkdir(parents=True, exist_ok=True)
    existing = faces_by_frame(ws, side, [frame_name]).get(frame_name, [])
    if side == "dst":
        _trash(ws, side, existing)
        index = 0
    else:
        used = {int(p.stem.rpartition("_")[2]) for p in existing if p.stem.rpartition("_")[2].isdigit()}
        index = next(i for i in range(len(used) + 1) if i not in used)
    debug_dir = ws.aligned_debug(side)
    has_debug = cfg.debug or debug_path(ws, side, frame_name).exists() or (debug_dir.is_dir() and any(debug_dir.glob("*.jpg")))
    job = _Job(side, cfg, aligned, None, "cpu", None, {})
    eng = _Engine(job)
    fr = _Frame(frame_name, 0, False, image)
    emb = eng.embed(image, lm)
    out, _ = eng.write_face(fr, index, face, lm, emb, frame_name, {"manual": True})
    if has_debug:
        redraw_debug(ws, side, frame_name, image)
    state = _State.load(ws.frames(side) / STATE_NAME)
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
        image = read_frame(ws.frames(side) / frame_name)
    drawn, size = [], 512
    for p in sorted(faces_by_frame(ws, side, [frame_name]).get(frame_name, [])):
        try:
            rec = meta.read_record(p)
        except MetadataError:
            continue
        if rec is not None:
            drawn.append((np.asarray(rec.source_rect, np.float32), rec.source_landmarks, rec.matrix))
            size = rec.size
    out = debug_path(ws, side, frame_name)
    write_debug_image(out, image, drawn, size)
    return out

