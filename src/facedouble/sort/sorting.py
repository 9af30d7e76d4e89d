"""The sort stage: order a face folder for curation, move rejects to the trash, undo.

`sort_faces(ws, side, cfg)` measures what the method needs (in worker processes, cached in
`aligned/.sort_index.json`), ranks the faces, and renames them `00000_<name>`, `00001_<name>`, ... so a
file browser shows the new order; rejects go to `aligned_trash/` under their plain name. Nothing is
deleted and face files are never rewritten. Every batch of moves is journalled first
(`aligned/.sort_journal/`), so `undo_sort(ws, side)` puts back the names and files of the last sort, and a
killed sort is finished by the next command. Images without a face record (or unreadable ones) are left
where and as they are, and reported.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing
import os
import re
import signal
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..files import remove_temporaries
from ..choices import Side
from ..config import SortConfig
from ..errors import InputError, MetadataError, OptionError, WorkspaceError
from ..faces import container
from ..faces.container import FaceRecord
from ..progress import Reporter
from ..workspace import IMAGE_SUFFIXES, Workspace
from . import cache as C
from . import journal, metrics, ranking

# What each method measures on the pixels ("identity" only for records without an embedding).
METHOD_METRICS: dict[str, frozenset[str]] = {
    "blur": frozenset({"blur"}),
    "motion-blur": frozenset({"motion"}),
    "hist": frozenset({"hist"}),
    "hist-dissim": frozenset({"hist"}),
    "brightness": frozenset({"hsv"}),
    "hue": frozenset({"hsv"}),
    "black": frozenset({"black"}),
    "identity": frozenset({"identity"}),
    "final": frozenset({"blur"}),
}
POOL_MIN_FILES = 64       # fewer files than this are measured in this process (a pool costs ~1 s to start)
SAVE_EVERY_S = 30.0       # the metric cache is saved this often while measuring, so a killed run resumes


@dataclasses.dataclass
class Face:
    path: Path
    record: FaceRecord
    metrics: dict[str, Any]
    base: str = ""

    @property
    def name(self) -> str:
        return self.path.name


@dataclasses.dataclass
class SortResult:
    """What a sort did. Names are file names in the sorted folder (`order`), the trash (`trashed`), or
    left untouched in the sorted folder with the reason (`untouched`)."""

    method: str
    folder: Path
    trash: Path | None
    order: list[str]
    trashed: list[str]
    untouched: dict[str, str]
    measured: int = 0
    cached: int = 0
    journal: Path | None = None
    missing: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        text = f"Sorted {len(self.order)} face(s) in {self.folder} by {self.method}"
        if self.trashed:
            text += f"; moved {len(self.trashed)} to {self.trash}"
        text += f" ({self.measured} measured, {self.cached} from the cache, {self.seconds:.1f} s)."
        if self.untouched:
            text += f" Left {len(self.untouched)} image(s) untouched: " + describe(self.untouched) + "."
        return text


@dataclasses.dataclass
class UndoResult:
    folder: Path
    kind: str
    method: str
    restored: int
    missing: list[str]

    def summary(self) -> str:
        what = f"sort by {self.method}" if self.kind == "sort" else self.kind
        text = f"Undid the last {what} in {self.folder}: {self.restored} file(s) back in place."
        if self.missing:
            text += f" {len(self.missing)} file(s) were no longer there: {', '.join(self.missing[:10])}"
            text += "..." if len(self.missing) > 10 else ""
        return text


def describe(named: dict[str, str], limit: int = 10) -> str:
    """'a.jpg (no face record), b.png (unreadable), ... and 12 more'."""
    items = sorted(named.items())
    text = ", ".join(f"{n} ({why})" for n, why in items[:limit])
    if len(items) > limit:
        text += f" and {len(items) - limit} more"
    return text


# -- names -------------------------------------------------------------------------------------------

def original_name(record: FaceRecord, suffix: str) -> str:
    """The name extraction gives a face: `<frame stem>_<face index><suffix>`."""
    return f"{Path(record.source_filename).stem}_{record.face_index}{suffix}"


def _natural(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def strip_sort_prefix(name: str, record: FaceRecord | None, known: dict[str, str] | None = None) -> str:
    """The name without a sort order prefix. For a face whose name ends with its original name the
    prefix is exactly what precedes it; other names are looked up in `known` (name -> name before the
    prefix, from the journals of earlier sorts). A name that is neither is returned as it is: frame-named
    files (`000123_0_retouched.jpg`) look like prefixed ones, so digits alone are never stripped."""
    if record is not None:
        derived = original_name(record, Path(name).suffix)
        if name == derived:
            return name
        if name.endswith("_" + derived) and name[: -len(derived) - 1].isdigit():
            return derived
    if known and name in known:
        return known[name]
    return name


def _assign_bases(faces: list[Face], known: dict[str, str] | None = None) -> None:
    """Give each face a unique base name (its name without a sort prefix); when two would share one,
    the face already carrying that plain name keeps it and the others keep their whole current name."""
    for f in faces:
        f.base = strip_sort_prefix(f.name, f.record, known)
    for _ in range(3):
        groups: dict[str, list[Face]] = {}
        for f in faces:
            groups.setdefault(f.base, []).append(f)
        clash = False
        for base, members in groups.items():
            if len(members) < 2:
                continue
            clash = True
            keeper = next((f for f in members if f.name == base), members[0])
            for f in members:
                if f is not keeper:
                    f.base = f.name
        if not clash:
            return


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    stem, suffix = os.path.splitext(name)
    i = 1
    while f"{stem} ({i}){suffix}" in taken:
        i += 1
    return f"{stem} ({i}){suffix}"


def is_debug_image(path: Path) -> bool:
    """Named like the copies `util add-landmarks-debug` draws (check `_has_record` too: those have none)."""
    return path.stem.endswith("_debug")


def _has_record(path: Path) -> bool:
    try:
        return container.read_record(path) is not None
    except (MetadataError, InputError):
        return False


# -- measuring ---------------------------------------------------------------------------------------

def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


def _decode(data: bytes, record: FaceRecord, name: str) -> np.ndarray:
    """RGB uint8 HWC, decoded at a reduced scale (JPEG DCT scaling) when that still leaves the working size."""
    import cv2

    flag = cv2.IMREAD_COLOR
    if data[:2] == b"\xff\xd8":
        for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if record.size // factor >= metrics.WORK_SIZE:
                flag = reduced
                break
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if arr is None:
        raise InputError(f"{name} is not a readable image")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def _read_record(data: bytes) -> tuple[FaceRecord | None, str | None]:
    try:
        raw = container.record_bytes(data)
    except MetadataError:
        return None, "not a JPEG or PNG face image"
    if raw is None:
        return None, "no face record"
    try:
        return FaceRecord.from_bytes(raw), None
    except MetadataError as e:
        return None, f"damaged face record: {e.message}"


def _from_cache(record: FaceRecord, wanted: Iterable[str], cached: dict[str, Any] | None) -> tuple[dict[str, Any], set[str]]:
    """(metrics usable from the cache entry or the record, names still to measure)."""
    out: dict[str, Any] = {}
    need = set(wanted)
    if cached and cached.get("face") == C.face_key(record.source_filename, record.face_index):
        for name in list(need):
            if name in cached:
                try:
                    out[name] = C.decode(name, cached[name])
                    need.discard(name)
                except (ValueError, TypeError):
                    pass
    if "identity" in need and record.identity is not None:
        out["identity"] = record.identity
        need.discard("identity")
    return out, need


def measure_file(path: Path, wanted: Iterable[str], cached: dict[str, Any] | None = None
                 ) -> tuple[FaceRecord | None, dict[str, Any], dict[str, Any], str | None]:
    """Read one face file and measure what is `wanted` and not valid in `cached`.

    Returns (record, metrics ready to use, metrics newly measured (to cache), problem). `problem` is a short
    reason ('no face record', ...) when the file cannot be sorted; record is then None."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return None, {}, {}, f"unreadable: {e.strerror}"
    record, problem = _read_record(data)
    if record is None:
        return None, {}, {}, problem
    out, need = _from_cache(record, wanted, cached)
    new: dict[str, Any] = {}
    if need:
        try:
            image = _decode(data, record, Path(path).name)
        except InputError:
            return None, {}, {}, "unreadable image data"
        scale = image.shape[1] / float(record.size or image.shape[1])
        lm = record.landmarks * np.float32(scale)
        matrix = record.matrix * scale
        try:
            new = metrics.face_metrics(image, lm, need - {"identity"}, matrix=matrix, source_size=record.source_size)
            if "identity" in need:
                from ..faces.identity import default_encoder

                new["identity"] = default_encoder()(image, lm)
        except Exception as e:  # noqa: BLE001 - one odd face must not stop a 10,000-face sort
            return None, {}, {}, f"could not be measured: {type(e).__name__}: {e}"
        out.update(new)
    return record, out, new, None


def _measure_task(task: tuple[str, frozenset]):
    path, wanted = task
    return measure_file(Path(path), wanted, None)


def _workers(cfg: SortConfig, jobs: int) -> int:
    n = getattr(cfg, "workers", 0) or os.cpu_count() or 1
    return max(1, min(n, jobs // 16 or 1))


def measure_folder(files: list[Path], wanted: frozenset[str], index: C.MetricIndex, cfg: SortConfig,
                   reporter: Reporter) -> tuple[list[Face], dict[str, str], int, int]:
    """Read and measure `files`; returns (faces, untouched name -> reason, measured, cached).

    Records and cache hits are read here (~0.3 ms a face); only faces with something left to measure go
    to the worker processes."""
    faces: list[Face] = []
    untouched: dict[str, str] = {}
    pending: list[tuple[Path, str, frozenset[str], dict[str, Any]]] = []
    cached = 0
    with reporter.task("reading face records", len(files)) as advance:
        for p in files:
            reporter.check()
            advance(1)
            try:
                key = C.file_key(p)
                entry = index.lookup(key)
                if entry is None and wanted and wanted != {"identity"}:
                    pending.append((p, key, wanted, {}))  # nothing cached: the worker reads the record
                    continue
                data = p.read_bytes()
            except OSError as e:
                untouched[p.name] = f"unreadable: {e.strerror}"
                continue
            record, problem = _read_record(data)
            if record is None:
                untouched[p.name] = problem or "no face record"
                continue
            values, need = _from_cache(record, wanted, entry)
            if need:
                pending.append((p, key, frozenset(need), values))
            else:
                faces.append(Face(path=p, record=record, metrics=values))
                cached += 1 if wanted else 0
    if not pending:
        return faces, untouched, 0, cached

    measured = 0
    last_save = time.monotonic()

    def take(path: Path, key: str, known: dict[str, Any], result) -> None:
        nonlocal measured, last_save
        record, values, new, problem = result
        if problem is not None:
            untouched[path.name] = problem
            return
        faces.append(Face(path=path, record=record, metrics={**known, **values}))
        if new:
            measured += 1
            index.store(key, C.face_key(record.source_filename, record.face_index), new)
        if time.monotonic() - last_save > SAVE_EVERY_S:
            index.save()
            last_save = time.monotonic()

    tasks = [(str(p), need) for p, _k, need, _v in pending]
    workers = _workers(cfg, len(tasks))
    with reporter.task("measuring faces", len(tasks)) as advance:
        try:
            if workers <= 1 or len(tasks) < POOL_MIN_FILES:
                for (p, key, _need, known), task in zip(pending, tasks):
                    reporter.check()
                    take(p, key, known, _measure_task(task))
                    advance(1)
            else:
                ctx = multiprocessing.get_context("spawn")
                chunk = max(1, min(32, len(tasks) // (workers * 8)))
                with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
                    try:
                        for (p, key, _need, known), result in zip(pending, pool.map(_measure_task, tasks, chunksize=chunk)):
                            reporter.check()
                            take(p, key, known, result)
                            advance(1)
                    except BaseException:
                        pool.shutdown(wait=False, cancel_futures=True)
                        raise
        finally:
            index.save()
    return faces, untouched, measured, cached


# -- ranking -----------------------------------------------------------------------------------------

def _pose(f: Face) -> tuple[float, float]:
    if "pose" not in f.metrics:
        yaw, pitch = metrics.pose(f.record.landmarks)
        extra = f.record.extra or {}
        if isinstance(extra.get("yaw"), (int, float)):
            yaw = float(extra["yaw"])
        if isinstance(extra.get("pitch"), (int, float)):
            pitch = float(extra["pitch"])
        f.metrics["pose"] = (yaw, pitch)
    return f.metrics["pose"]


def _rect_area(r: FaceRecord) -> float:
    x0, y0, x1, y1 = r.source_rect
    return float(max(0, x1 - x0) * max(0, y1 - y0))


def _reference_embedding(path: str) -> np.ndarray:
    """Identity embedding of the reference: a face file with a record (its stored embedding, or one from its
    landmarks), or any photo (the largest face the project's face finder sees)."""
    from ..faces.identity import default_encoder, reference_embedding

    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"Reference image {p} does not exist; give the path of a photo of the person to keep.")
    data = p.read_bytes()
    try:
        raw = container.record_bytes(data)
        record = FaceRecord.from_bytes(raw) if raw else None
    except MetadataError:
        record = None
    if record is None:
        return reference_embedding(p)
    if record.identity is not None:
        return record.identity
    image = container.decode_image(data, str(p))
    scale = image.shape[1] / float(record.size or image.shape[1])
    return default_encoder()(image, record.landmarks * np.float32(scale))


def rank(faces: list[Face], cfg: SortConfig, reporter: Reporter) -> tuple[list[int], list[int]]:
    """(indices kept, in their new order; indices to move to the trash) for `cfg.by`.
    `faces` must already be in original-name order (ties keep that order)."""
    n = len(faces)
    by = cfg.by
    idx = np.arange(n)

    def by_key(values, descending: bool) -> list[int]:
        v = np.asarray(values, dtype=np.float64)
        return [int(i) for i in np.lexsort((idx, -v if descending else v))]

    if n == 0:
        return [], []
    if by == "blur":
        return by_key([f.metrics["blur"] for f in faces], True), []
    if by == "motion-blur":
        return by_key([f.metrics["motion"] for f in faces], False), []
    if by == "face-yaw":
        return by_key([_pose(f)[0] for f in faces], False), []
    if by == "face-pitch":
        return by_key([_pose(f)[1] for f in faces], False), []
    if by == "brightness":
        return by_key([f.metrics["hsv"][0] for f in faces], True), []
    if by == "hue":
        return by_key([f.metrics["hsv"][1] for f in faces], True), []
    if by == "black":
        return by_key([f.metrics["black"] for f in faces], False), []
    if by == "source-rect-size":
        return by_key([_rect_area(f.record) for f in faces], True), []
    if by == "origname":
        return list(idx), []
    if by == "oneface":
        per_frame: dict[str, int] = {}
        for f in faces:
            per_frame[f.record.source_filename] = per_frame.get(f.record.source_filename, 0) + 1
        multi = [i for i, f in enumerate(faces) if per_frame[f.record.source_filename] > 1]
        single = [i for i, f in enumerate(faces) if per_frame[f.record.source_filename] == 1]
        return single, multi
    if by in ("hist", "hist-dissim"):
        feats = metrics.histogram_features(np.stack([f.metrics["hist"] for f in faces]))
        if by == "hist":
            reporter.info(f"chaining {n} faces by histogram similarity")
            return [int(i) for i in ranking.nearest_neighbour_chain(feats)], []
        return by_key(ranking.dissimilarity_scores(feats), True), []
    if by == "identity":
        from ..faces.identity import SAME_PERSON

        emb = np.stack([f.metrics["identity"] for f in faces]).astype(np.float32)
        ref = _reference_embedding(cfg.reference) if cfg.reference else None
        labels = ranking.cluster_identities(emb, SAME_PERSON)
        order, member = ranking.identity_order(emb, labels, ref, SAME_PERSON)
        people = int(labels.max()) + 1
        if ref is not None:
            reporter.info(f"{int(member.sum())} of {n} faces are the reference person; {people} group(s) in all")
            if cfg.trash_others:
                return [int(i) for i in order if member[i]], [int(i) for i in order if not member[i]]
        else:
            sizes = np.bincount(labels)
            reporter.info(f"{people} person group(s) of {', '.join(str(s) for s in sizes[:10])}"
                          + (" ..." if people > 10 else "") + " faces")
        return [int(i) for i in order], []
    if by == "final":
        pose = np.array([_pose(f) for f in faces], dtype=np.float64)
        sharp = np.array([f.metrics["blur"] for f in faces], dtype=np.float64)
        keep = [int(i) for i in ranking.spread_select(pose[:, 0], pose[:, 1], sharp, cfg.target)]
        kept = set(keep)
        return keep, [i for i in range(n) if i not in kept]
    raise OptionError(f"--by {by} is not a sort method.")  # pragma: no cover - config validates


# -- the stage ---------------------------------------------------------------------------------------

def face_folder(ws: Workspace, side: Side) -> Path:
    """The aligned folder of a side, or a WorkspaceError saying how to make it."""
    ws.require()
    folder = ws.aligned(side)
    if not folder.is_dir():
        raise WorkspaceError(f"There is no face folder {folder}; extract faces first with "
                             f"`facedouble extract {side} -w {ws.root}`.")
    return folder


def list_images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith(".")), key=lambda p: p.name)


def sort_faces(ws: Workspace, side: Side, cfg: SortConfig | None = None, *,
               reporter: Reporter | None = None) -> SortResult:
    """Sort `data_<side>/aligned` by `cfg.by` (see `SortConfig`); rejects go to `aligned_trash`.
    Saves `cfg` to `data_<side>/sort_config.json`. Undo with `undo_sort`."""
    cfg = cfg or SortConfig()
    folder = face_folder(ws, side)
    result = sort_folder(folder, cfg, trash=ws.aligned_trash(side), reporter=reporter)
    cfg.save(ws.frames(side) / "sort_config.json")
    return result


def sort_folder(folder: Path, cfg: SortConfig, *, trash: Path | None = None,
                reporter: Reporter | None = None) -> SortResult:
    """Sort any face folder; `trash` must be a sibling folder (default `<folder>_trash`)."""
    rep = reporter or Reporter()
    start = time.monotonic()
    folder = Path(folder)
    if not folder.is_dir():
        raise WorkspaceError(f"There is no face folder {folder}; check the path.")
    trash = Path(trash) if trash is not None else folder.with_name(folder.name + "_trash")
    if trash.parent.resolve() != folder.parent.resolve():
        raise OptionError(f"The trash folder {trash} must sit beside {folder}.")
    if cfg.trash_others and not cfg.reference:
        raise OptionError("--trash-others needs --reference IMG (a photo of the person to keep).")
    if cfg.reference and cfg.by != "identity":
        raise OptionError("--reference only works with --by identity.")
    with journal.FolderLock(folder):
        remove_temporaries(folder, folder.parent)  # what a killed run left
        done = journal.finish_pending(folder)
        if done is not None:
            rep.warn(f"finished an interrupted {done.kind} in {folder} first.")
        images = list_images(folder)
        untouched: dict[str, str] = {}
        debug = {p.name for p in images if is_debug_image(p) and not _has_record(p)}
        candidates = [p for p in images if p.name not in debug]
        if not candidates:
            untouched = {n: "debug image; remove with `facedouble util remove-debug`" for n in debug}
            if untouched:
                rep.warn(f"no face images to sort in {folder}; left untouched: {describe(untouched)}.")
                return SortResult(cfg.by, folder, trash, [], [], untouched, seconds=time.monotonic() - start)
            raise InputError(f"{folder} holds no face images; extract faces into it with `facedouble extract`.")
        index = C.MetricIndex(folder)
        wanted = METHOD_METRICS.get(cfg.by, frozenset())
        faces, bad, measured, cached = measure_folder(candidates, wanted, index, cfg, rep)
        untouched.update(bad)
        if bad and not faces:
            raise MetadataError(f"None of the {len(bad)} image(s) in {folder} can be sorted: {describe(bad)}; extract "
                                "faces with `facedouble extract`, or import the original tool's with "
                                "`facedouble util import-dfl`.")
        if bad:
            rep.warn(f"{len(bad)} image(s) cannot be sorted and stay as they are: {describe(bad)}.")
        faces.sort(key=lambda f: (_natural(f.record.source_filename), f.record.face_index, f.name))
        _assign_bases(faces, journal.produced_names(folder))
        rep.check()
        keep, drop = rank(faces, cfg, rep)
        # a debug copy (`util add-landmarks-debug`) moves with its face; one without a face stays, reported
        companions = {f.name: f.path.stem + "_debug.jpg" for f in faces if f.path.stem + "_debug.jpg" in debug}
        for name in sorted(debug - set(companions.values())):
            untouched[name] = "debug image without its face; remove with `facedouble util remove-debug`"
        kept = [faces[i] for i in keep]
        moves, order_names, trash_names = _plan(folder, trash, kept, [faces[i] for i in drop], companions)
        result = SortResult(cfg.by, folder, trash, order_names, trash_names, untouched, measured, cached)
        if moves:
            bases = {new: f.base for new, f in zip(order_names, kept) if new != f.base}
            j = journal.create(folder, "sort", moves, info={"method": cfg.by, "options": cfg.to_dict(), "bases": bases})
            result.missing = journal.apply(j)
            result.journal = j.path
        result.seconds = time.monotonic() - start
        return result


def _plan(folder: Path, trash: Path, keep: list[Face], drop: list[Face], companions: dict[str, str] | None = None
          ) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Moves (relative to the folder's parent) giving `keep` order-number prefixes and `drop` trash names.
    `companions` (face name -> its `_debug.jpg` copy) move and rename with their face."""
    companions = companions or {}
    moving = {f.name for f in keep} | {f.name for f in drop}
    moving |= {companions[n] for n in moving if n in companions}
    taken = {p.name for p in folder.iterdir()} - moving  # untouched files keep their names
    width = max(5, len(str(max(len(keep) - 1, 0))))
    moves: list[tuple[str, str]] = []
    order_names = []

    def follow(f: Face, target: str, into: str, names: set[str]) -> None:
        debug = companions.get(f.name)
        if debug is None:
            return
        new = f"{Path(target).stem}_debug{Path(debug).suffix}"
        if new in names:
            return  # a file of that name is in the way: the copy stays as it is
        names.add(new)
        if (into, new) != (folder.name, debug):
            moves.append((f"{folder.name}/{debug}", f"{into}/{new}"))

    for i, f in enumerate(keep):
        target = _unique(f"{i:0{width}d}_{f.base}", taken)
        taken.add(target)
        order_names.append(target)
        if target != f.name:
            moves.append((f"{folder.name}/{f.name}", f"{folder.name}/{target}"))
        follow(f, target, folder.name, taken)
    trash_taken = {p.name for p in trash.iterdir()} if trash.is_dir() else set()
    trash_names = []
    for f in drop:
        target = _unique(f.base, trash_taken)
        trash_taken.add(target)
        trash_names.append(target)
        moves.append((f"{folder.name}/{f.name}", f"{trash.name}/{target}"))
        follow(f, target, trash.name, trash_taken)
    return moves, order_names, trash_names


def undo_sort(ws: Workspace, side: Side, *, reporter: Reporter | None = None) -> UndoResult:
    """Put back the names and files of the last sort (or face-set rename) of `data_<side>/aligned`."""
    return undo_folder(face_folder(ws, side), reporter=reporter)


def undo_folder(folder: Path, *, reporter: Reporter | None = None) -> UndoResult:
    folder = Path(folder)
    if not folder.is_dir():
        raise WorkspaceError(f"There is no face folder {folder}; check the path.")
    with journal.FolderLock(folder):
        j = journal.last(folder)
        if j is None:
            raise InputError(f"Nothing to undo in {folder}: no sort was done there, or all were undone already.")
        missing = journal.undo(j)
    method = str(j.info.get("method", j.kind))
    return UndoResult(folder, j.kind, method, len(j.moves) - len(missing), missing)
