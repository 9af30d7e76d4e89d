"""The merge stage: put the model's predicted face onto every dst frame.

For each frame of data_dst, its aligned face records (data_dst/aligned, matched by source filename) give
the 68 landmarks; the face is cut out at the model's face type and resolution, the model turns it into
src's face and (optionally) a mask, and the face goes back onto the frame through the chosen mask and
blend mode. Everything between the model and the frame happens in face space (aligned coordinates) and
is warped back only onto the face's own frame rectangle, so a 4K frame costs about what a 360p one does.
The detail options (sharpen/blur, denoise, bicubic degrade, motion blur along the dst face's movement between
neighbouring frames; merge/adjust.py) act on the predicted face after colour matching, before the blend. Unlike
the original tool, whose denoise and bicubic degrade softened the whole dst frame to match a soft face, they act
on the face only: the background stays dst's own pixels (the report's background check), and a face-sized
image costs the same at any frame size.

Per-frame settings: `cfg.ranges` give frame ranges their own options (the original interactive merger's; see
merge/ranges.py); each frame is merged with `cfg.for_frame(number)`, and a range is a cut for the temporal smoothing
below (a face is smoothed only with neighbours merged with the same options).

Temporal stability: with `smooth_frames` = k > 0 each face is smoothed with the same face in frames
t-k..t+k: its landmarks (so the crop does not jitter), its mask, and the colour statistics that colour
transfer and histogram matching aim at (the dst face's colours pooled over the window);
`suppress_seamless_jitter` averages the Poisson blend over three slightly eroded masks and steadies the
low frequencies (8 x 8 cells) of the blended face over the window.

Work is overlapped on all cores: a thread pool decodes frames and cuts faces ahead of the model, the
model runs batches in the calling thread, and the pool builds masks, blends, marks and encodes behind it.

Outputs: data_dst/merged/NAME (every frame; frames without a face are copied), data_dst/merged_mask/
STEM.png (8-bit grey), data_dst/merge_config.json (the options) and data_dst/merge_run.json (run id,
model, counts). Every image written goes through `mark_output` (provenance watermark) and `sign_output` (C2PA
content credentials, signed in memory in the writer threads with `cfg.sign_cert`/`sign_key` or the local
certificate, checked before any work); neither has an off switch.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..files import remove_temporaries
from ..config import MergeConfig, write_json_atomic
from ..errors import InputError, MetadataError, ModelError, NoFaceError
from ..faces.align import transform_points, warp_to_face
from ..faces.container import FaceRecord, read_record
from ..imagefile import read_rgb
from ..inference import crop_matrix, load_model
from ..progress import Reporter
from ..workspace import Workspace
from . import blend as B
from . import mask as K
from ..faces import mesh as mesh_net
from . import temporal as T
from .compose import (MESH_DST_MODES, XSEG_DST_MODES, XSEG_PRD_MODES, FaceLayer, MergedFrame, MergeState, Swapper,
                      compose_frame, dst_xseg, face_motions, has_codes, prepare_face, run_codes, run_from_codes,
                      run_model, super_resolve)
from .marking import is_matte, new_run_id, output_signer, write_marked, write_mask

RUN_NAME = "merge_run.json"
DEBUG_DIR = "merged_debug"


# ----------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------

def frame_records(ws: Workspace, reporter: Reporter | None = None) -> dict[str, list[FaceRecord]]:
    """Aligned dst face records grouped by the frame they come from, sorted by face index."""
    out: dict[str, list[FaceRecord]] = {}
    bad = 0
    for path in ws.face_files("dst"):
        try:
            rec = read_record(path)
        except MetadataError:
            rec = None
        if rec is None:
            bad += 1
            continue
        out.setdefault(rec.source_filename, []).append(rec)
    for recs in out.values():
        recs.sort(key=lambda r: r.face_index)
    if bad and reporter is not None:
        reporter.warn(f"{bad} file(s) in {ws.aligned('dst')} have no readable face record and were ignored.")
    return out


def load_swapper(ws: Workspace, cfg: MergeConfig) -> Swapper:
    """The model: `cfg.model_file` (a DFM file) when given, else the trained model in `cfg.model` (default
    workspace/model); see facedouble.inference."""
    model_dir = Path(cfg.model) if cfg.model else ws.model
    return load_model(model_dir, model_file=getattr(cfg, "model_file", None), device=cfg.device, name=cfg.model_name,
                      morph_factor=getattr(cfg, "morph_factor", None))


def _src_records(ws: Workspace, limit: int = 400):
    """(image RGB uint8, FaceRecord) of up to `limit` aligned src faces, evenly spaced; unreadable ones skipped."""
    from ..faces.container import read_face

    files = ws.face_files("src")
    for path in files[::max(1, len(files) // limit)]:
        try:
            yield read_face(path)
        except (MetadataError, InputError):
            continue


def detail_pairs(ws: Workspace, swapper: Swapper, size: int,
                 limit: int = 400) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """What the face-detail network learns from: src faces cut like the model's input at `size` px (the
    targets), and the model's own reconstructions of them at its resolution (the inputs). The model is
    soft where it has not yet learned her detail, and its swaps are soft the same way, so the network
    learns to put her detail back.

    Returns:
        (targets (size, size, 3) uint8 RGB, inputs (res, res, 3) float32 [0, 1], the targets' 68 landmarks
        (68, 2) float32 in their pixels).
    """
    res = int(swapper.resolution)
    targets, crops, points = [], [], []
    for image, record in _src_records(ws, limit):
        m = crop_matrix(swapper, record.landmarks, size)
        targets.append(warp_to_face(image, m, size))  # image: RGB
        points.append(transform_points(record.landmarks, m))
        crops.append(warp_to_face(image, crop_matrix(swapper, record.landmarks, res), res))
    inputs, _ = run_model(swapper, crops, 8)
    return targets, inputs, points


def face_detail_file(ws: Workspace, cfg: MergeConfig, resolution: int) -> Path:
    """Where the face-detail network for a model of `resolution` is kept: model/superres/ of `cfg.model`, else of
    the workspace's model."""
    from . import superres

    return superres.detail_path(Path(cfg.model) if cfg.model else ws.model, 2 * int(resolution))


def load_face_detail(ws: Workspace, cfg: MergeConfig, resolution: int, reporter: Reporter | None = None, *,
                     swapper: Swapper | None = None):
    """The face-detail network for faces of 2 x `resolution`: loaded from model/superres/, or trained on
    data_src/aligned (a few minutes) and saved there. With `swapper` it learns from that model's
    reconstructions of the src faces (`detail_pairs`) and is trained again when the model has trained on
    since (or the saved network was made by an older default: planned for fewer steps than `superres.STEPS`, or
    with another texture power than today's for the model's age, `superres.texture_power_for`, or another grain
    power, `superres.grain_power_for`); without, from
    the src faces downscaled."""
    from . import superres

    size = 2 * int(resolution)
    path = face_detail_file(ws, cfg, resolution)
    iteration = getattr(swapper, "iteration", None) if swapper is not None else None
    power, eye_power = superres.texture_power_for(iteration), superres.eye_power_for(iteration)
    grain = superres.grain_power_for(iteration)
    if path.exists():
        detail = superres.FaceDetail.load(path)
        # kept while the model has not trained on, unless an older default made it (planned shorter, or another
        # texture power for the model's age, L1 alone included)
        current = detail.metrics.get("model_iteration") == iteration and \
            int(detail.metrics.get("planned_steps", 0)) >= superres.STEPS and \
            float(detail.metrics.get("texture_power", 0.0)) == power and \
            float(detail.metrics.get("eye_texture_power", detail.metrics.get("texture_power", 0.0))) == eye_power and \
            float(detail.metrics.get("grain_power", 0.0)) == grain
        if iteration is None or current:
            return detail
    rep = reporter or Reporter()
    if swapper is not None:
        faces, inputs, points = detail_pairs(ws, swapper, size)
    else:  # the faces as they are, resized to `size` by the training: so are their landmarks
        records, inputs = list(_src_records(ws)), None
        faces = [image for image, _ in records]
        points = [np.asarray(r.landmarks, np.float32) * (size / image.shape[1]) for image, r in records]
    if len(faces) < 2:
        raise InputError(f"--super-resolution learns the face detail from src faces, but {ws.aligned('src')} has "
                         f"{len(faces)}; extract src faces first or leave super resolution off.")
    rep.info(f"training the face-detail network on {len(faces)} src faces (saved to {path.parent})")
    with rep.task("super resolution: learning src face detail", 100) as advance:
        done = [0]

        def progress(frac: float, loss: float) -> None:
            n = int(frac * 100)
            if n > done[0]:
                advance(n - done[0])
                done[0] = n

        detail = superres.train_face_detail(faces, size, inputs=inputs, texture_power=power, landmarks=points,
                                            eye_power=eye_power, grain_power=grain, progress=progress,
                                            check=rep.check)
    detail.metrics["model_iteration"] = iteration
    detail.save(path)
    m = detail.metrics
    rep.info(f"face detail on held-back src faces: PSNR {m['psnr_net']:.2f} dB (bicubic {m['psnr_bicubic']:.2f}), "
             f"sharpness {m['sharpness_net']:.4f} (bicubic {m['sharpness_bicubic']:.4f}, original {m['sharpness_truth']:.4f})")
    return detail


def face_detail_for(ws: Workspace, cfg: MergeConfig, resolution: int, reporter: Reporter | None = None, *,
                    swapper: Swapper | None = None, learn: bool = True):
    """The face-detail network that `cfg.super_resolution` asks for, or None for none: "off" none; "on" the network
    (`load_face_detail`; its errors stop the merge); "auto" the network when the model has trained long enough to
    gain from it (`superres.auto_wanted`) and there are src faces to learn from, else None with a notice saying
    why. `learn=False` (the browser tuner, which answers in a second): only a network already saved; "on" without
    one is an error, "auto" merges without it and says so."""
    from . import superres

    mode = cfg.super_resolution
    if mode == "off":
        return None
    rep = reporter or Reporter()
    iteration = getattr(swapper, "iteration", None) if swapper is not None else None
    if mode == "auto" and not superres.auto_wanted(iteration):
        age = "of unknown age" if iteration is None else f"at {int(iteration):,} iterations"
        rep.info(f"super resolution stays off (auto): the model is {age}, and the face-detail network sharpens its "
                 f"faces from about {superres.AUTO_MIN_ITERATIONS:,} on (--super-resolution on forces it)")
        return None
    if not learn:
        path = face_detail_file(ws, cfg, resolution)
        if path.exists():
            return superres.FaceDetail.load(path)
        if mode == "on":
            raise ModelError("Super resolution needs the face-detail network, which is learned by the first merge "
                             "with --super-resolution; run Merge all once with it on.")
        rep.info("super resolution (auto) is not in this preview yet: Merge all learns the face-detail network first")
        return None
    if mode == "auto" and len(ws.face_files("src")) < 2:
        rep.warn(f"super resolution stays off (auto): it learns her face detail from src faces, and "
                 f"{ws.aligned('src')} has fewer than 2; extract src faces to have it")
        return None
    return load_face_detail(ws, cfg, resolution, rep, swapper=swapper)


def find_frame(ws: Workspace, number: int) -> Path:
    """The dst frame file with frame number `number` (its name's number; the first frame is 1)."""
    for p in ws.frame_files("dst"):
        if p.stem.isdigit() and int(p.stem) == number:
            return p
    files = ws.frame_files("dst")
    raise InputError(f"There is no dst frame number {number} in {ws.frames('dst')} "
                     f"({len(files)} frames); give a number between 1 and {len(files)}.")


def neighbour_records(ws: Workspace, by_frame: dict[str, list[FaceRecord]], path: Path
                      ) -> tuple[list[FaceRecord], list[FaceRecord]]:
    """The face records of the dst frames before and after `path` (`merge_frame`'s neighbours)."""
    names = [p.name for p in ws.frame_files("dst")]
    try:
        i = names.index(Path(path).name)
    except ValueError:
        return [], []
    return (by_frame.get(names[i - 1], []) if i > 0 else [],
            by_frame.get(names[i + 1], []) if i + 1 < len(names) else [])


def preview(ws: Workspace, cfg: MergeConfig, number: int, out_path: str | Path, *, swapper: Swapper | None = None,
            reporter: Reporter | None = None) -> MergedFrame:
    """`merge --frame N --preview OUT.png`: merge one frame with its options (`cfg.for_frame(N)`) and write it
    (marked and signed), through the same MergeSession as the browser UI's tuner."""
    from .session import MergeSession

    factory = (lambda ws_, cfg_: swapper) if swapper is not None else load_swapper
    return MergeSession(ws, factory, train_detail=True, reporter=reporter).preview_file(number, cfg, out_path)


# ----------------------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------------------

@dataclass
class MergeSummary:
    frames: int = 0          # frames in data_dst
    written: int = 0         # frames merged (or copied) in this run
    skipped: int = 0         # frames already merged (resume)
    copied: int = 0          # frames without a face, copied
    faces: int = 0           # faces through the model (context frames included)
    seconds: float = 0.0
    fallbacks: dict[str, int] = field(default_factory=dict)  # mask fallback -> faces (also in merge_run.json)
    super_resolved: bool = False  # the faces went through the face-detail network (what --super-resolution auto chose)

    @property
    def fps(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Job:
    index: int
    path: Path
    records: list
    landmarks: list
    image: np.ndarray | None = None
    hands: list = field(default_factory=list)
    crops: list = field(default_factory=list)
    preds: list = field(default_factory=list)
    masks: list = field(default_factory=list)


def frame_number(path: Path, index: int) -> int:
    """The number of a dst frame file: its name's (000123.png -> 123), else its place in the folder (1 = first)."""
    return int(path.stem) if path.stem.isdigit() else index + 1


def frame_configs(cfg: MergeConfig, frames: Sequence[Path]) -> list[MergeConfig]:
    """The effective options of each frame (`MergeConfig.for_frame`); frames of one range share one object."""
    made: dict[Any, MergeConfig] = {}
    out = []
    for i, path in enumerate(frames):
        number = frame_number(path, i)
        r = cfg.frame_range(number)
        key = None if r is None else r.start
        if key not in made:
            made[key] = cfg.for_frame(number)
        out.append(made[key])
    return out


def _outputs(ws: Workspace, path: Path, cfg: MergeConfig) -> tuple[Path, Path]:
    image = ws.merged / (path.stem + ".png" if cfg.export_alpha else path.name)
    return image, ws.merged_mask / (path.stem + ".png")


def merge(ws: Workspace, cfg: MergeConfig, *, reporter: Reporter | None = None, force: bool = False,
          swapper: Swapper | None = None) -> MergeSummary:
    """The merge stage (see the module doc). Resumes: frames already in merged/ are kept unless `force`.

    Args:
        ws: the workspace (data_dst frames, data_dst/aligned records, model/).
        cfg: the options; saved as data_dst/merge_config.json. Frames in its `ranges` get those options
            (`frame_configs`); the options that cannot change per frame are the run's.
        reporter: progress, warnings and cancellation (Ctrl-C, SIGTERM, UI).
        force: merge every frame again.
        swapper: a loaded model; default: load `cfg.model` (workspace/model).
    """
    rep = reporter or Reporter()
    ws.require()
    frames = ws.frame_files("dst")
    if not frames:
        raise InputError(f"No dst frames in {ws.frames('dst')}; run `facedouble video extract` on data_dst first.")
    run_id, previous = _start_run(ws, cfg, force, rep)
    signer = output_signer(run_id, cfg, _training_hash(ws))  # a bad --sign-cert/--sign-key stops here
    remove_temporaries(ws.merged, ws.merged_mask, ws.frames("dst"))  # what a killed merge left
    records = frame_records(ws, rep)
    if not records:
        found = len(ws.face_files("dst"))
        what = (f"None of the {found} image(s) in {ws.aligned('dst')} has a facedouble face record" if found
                else f"No aligned dst faces in {ws.aligned('dst')}")
        raise NoFaceError(f"{what}; run `facedouble extract` on dst first (or import the original tool's faces with "
                          "`facedouble util import-dfl`).")
    swapper = swapper or load_swapper(ws, cfg)
    res, ftype = int(swapper.resolution), str(swapper.face_type)
    detail = face_detail_for(ws, cfg, res, rep, swapper=swapper)
    ws.merged.mkdir(parents=True, exist_ok=True)
    ws.merged_mask.mkdir(parents=True, exist_ok=True)
    debug_dir = ws.frames("dst") / DEBUG_DIR
    cfgs = frame_configs(cfg, frames)  # each frame's options (the ranges applied)
    if any(c.debug for c in cfgs):
        debug_dir.mkdir(exist_ok=True)
    cfg.save(ws.config_file(MergeConfig))

    radius = int(cfg.smooth_frames)
    reach = 2 * radius if cfg.suppress_seamless_jitter else radius  # how far a frame's smoothing looks
    recs = [records.get(p.name, []) for p in frames]
    lms = T.smooth_landmarks([[r.source_landmarks for r in fr] for fr in recs], radius)
    # frames whose per-frame settings changed since the last finished run are merged again (with the neighbours
    # their smoothing reaches); other option changes keep what is merged, as before (--force redoes all)
    redo = set() if force else frames_to_redo(previous.get("options"), cfg, cfgs, frames, reach)
    done = [not force and i not in redo and all(o.exists() for o in _outputs(ws, p, cfg)) for i, p in enumerate(frames)]
    if redo:
        rep.info(f"{len(redo)} frame(s) whose per-frame settings changed (or a neighbour's) are merged again.")
    todo = [i for i, d in enumerate(done) if not d]
    summary = MergeSummary(frames=len(frames), skipped=len(frames) - len(todo), super_resolved=detail is not None)
    if summary.skipped:
        rep.info(f"{summary.skipped} frame(s) already merged are kept (use --force to merge them again).")
    # frames to prepare: those to write, plus their neighbours with faces (temporal context)
    need = set(todo)
    for i in todo:
        if recs[i]:
            need.update(j for j in range(max(0, i - reach), min(len(frames), i + reach + 1)) if recs[j])
    order = sorted(need)
    _write_run(ws, run_id, swapper, cfg, previous, status="running")
    start = time.monotonic()
    state = MergeState(capacity=8)
    masks_used = {c.mask for c in cfgs}
    if masks_used & set(XSEG_PRD_MODES):  # the XSeg network is a model (layer 2), loaded like the swapper
        from ..xseg.network import load_xseg

        state.xseg = load_xseg(ws.model)
    warn = rep.warn
    tracker = mesh_net.HandTracker(video=True) if masks_used & set(MESH_DST_MODES) else None
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="merge")
    prepared: dict[int, tuple[np.ndarray, list[FaceLayer]]] = {}
    writes: deque[Future] = deque()
    finalize_next = 0  # position in `todo` of the next frame to write

    codes: dict[int, list[np.ndarray]] | None = None  # --smooth-codes (set first thing in the try below)

    def load(i: int) -> _Job:
        job = _Job(i, frames[i], recs[i], lms[i])
        job.image = read_rgb(frames[i])
        if codes is None:  # with --smooth-codes `_averaged_codes` cut and encoded the faces already
            job.crops = _face_crops(job.image, job.landmarks, swapper)
        return job

    def prepare(job: _Job) -> tuple[np.ndarray, list[FaceLayer]]:
        fc = cfgs[job.index]
        motions = face_motions(lms, job.index) if fc.motion_blur else [None] * len(job.landmarks)
        layers = [prepare_face(job.image, lm, p, m, res, ftype, fc, state, warn, job.hands,
                               m_in=crop_matrix(swapper, lm), motion=v,
                               xseg_dst=dst_xseg(rec) if fc.mask in XSEG_DST_MODES else None)
                  for lm, p, m, v, rec in zip(job.landmarks, job.preds, job.masks, motions, job.records)]
        return job.image, layers

    def submit_finalize(i: int) -> None:
        # the frame and its neighbours' layers are taken now: `prepared` may drop them before the task runs
        image, layers = prepared[i]
        window = {d: prepared[i + d][1] for d in range(-reach, reach + 1) if (i + d) in prepared} if radius else None
        writes.append(pool.submit(finalize, i, image, layers, window))

    def finalize(i: int, image: np.ndarray, layers: list[FaceLayer], window: dict | None) -> int:
        path = frames[i]
        out_img, out_mask = _outputs(ws, path, cfg)
        if layers:
            merged = compose_frame(image, layers, cfgs[i], window)
            if cfgs[i].debug:
                _write_debug(debug_dir, path, image, merged, layers, run_id, signer)
        else:
            merged = MergedFrame(image, np.zeros(image.shape[:2], np.uint8))
        write_marked(out_img, merged.image, run_id, alpha=merged.mask if cfg.export_alpha else None, signer=signer,
                     matte=bool(layers) and is_matte(cfgs[i]))
        write_mask(out_mask, merged.mask, run_id, signer)
        return 0 if layers else 1

    def flush(limit: int) -> None:
        while len(writes) > limit:
            summary.copied += writes.popleft().result()
            summary.written += 1
            advance(1)

    try:
        codes = _averaged_codes(frames, recs, lms, order, swapper, cfg, pool, rep)
        with rep.task("merge", len(todo)) as advance:
            # frames with no face need no model; put them in the order stream too (they are cheap)
            stream = sorted(set(order) | set(todo))
            chunks: list[list[int]] = []
            cur: list[int] = []
            nfaces = 0
            for i in stream:
                cur.append(i)
                nfaces += len(recs[i])
                if nfaces >= cfg.batch_size or len(cur) >= 2 * cfg.batch_size:
                    chunks.append(cur)
                    cur, nfaces = [], 0
            if cur:
                chunks.append(cur)
            max_prepared = -1
            pending: list[tuple[int, Future]] = []
            loads = [pool.submit(load, i) for i in chunks[0]] if chunks else []
            for c in range(len(chunks)):
                rep.check()
                jobs = [f.result() for f in loads]
                loads = [pool.submit(load, i) for i in chunks[c + 1]] if c + 1 < len(chunks) else []
                if tracker is not None:  # in frame order, in this thread: hands are tracked across frames
                    for job in jobs:
                        job.hands = tracker(job.image)
                counts = [len(job.landmarks) for job in jobs]
                if sum(counts):
                    if codes is not None:  # the faces' codes averaged over their neighbours (--smooth-codes)
                        p, m = run_from_codes(swapper, [c for job in jobs for c in codes.get(job.index, [])],
                                              cfg.batch_size)
                    else:
                        p, m = run_model(swapper, [crop for job in jobs for crop in job.crops], cfg.batch_size)
                    p = super_resolve(detail, p)
                    summary.faces += sum(counts)
                    k = 0
                    for job, n in zip(jobs, counts):
                        job.preds, job.masks = p[k:k + n], m[k:k + n]
                        k += n
                # finish the previous chunk's preparation before queueing this one's
                for i, f in pending:
                    prepared[i] = f.result()
                    max_prepared = max(max_prepared, i)
                pending = [(job.index, pool.submit(prepare, job)) for job in jobs]
                finalize_next = _finalize_ready(todo, finalize_next, max_prepared, reach, len(frames), last=False,
                                                submit=submit_finalize)
                flush(4)
                _evict(prepared, todo, finalize_next, reach)
            for i, f in pending:
                prepared[i] = f.result()
                max_prepared = max(max_prepared, i)
            finalize_next = _finalize_ready(todo, finalize_next, max_prepared, reach, len(frames), last=True,
                                            submit=submit_finalize)
            flush(0)
    finally:
        for f in writes:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        if tracker is not None:
            tracker.close()
        summary.seconds = time.monotonic() - start
        summary.fallbacks = dict(state.fallbacks)
        _write_run(ws, run_id, swapper, cfg, previous, status="done" if summary.written == len(todo) else "stopped",
                   summary=summary)
    rep.info(f"merged {summary.written} frame(s) ({summary.copied} without a face, copied) in {summary.seconds:.1f} s "
             f"({summary.fps:.1f} frames/s) into {ws.merged}")
    return summary


def _face_crops(image: np.ndarray, landmarks: Sequence[np.ndarray], swapper: Swapper) -> list[np.ndarray]:
    """The model's input: each face of `image` cut at its resolution and face type (`crop_matrix`)."""
    res = int(swapper.resolution)
    return [warp_to_face(image, crop_matrix(swapper, lm), res) for lm in landmarks]


def _averaged_codes(frames: Sequence[Path], recs: Sequence[Sequence[FaceRecord]], lms: Sequence[Sequence[np.ndarray]],
                    order: Sequence[int], swapper: Swapper, cfg: MergeConfig, pool: ThreadPoolExecutor,
                    rep: Reporter) -> dict[int, list[np.ndarray]] | None:
    """--smooth-codes: the model's code of every face in the frames `order` (indices into `frames`), averaged
    over `cfg.smooth_codes` neighbouring frames each side along the face's track (`temporal.track_average`),
    by frame index; the faces are cut with the smoothed landmarks `lms`, as the merge cuts them. None when off,
    or when the model's swap does not split into codes (said once)."""
    radius = int(cfg.smooth_codes)
    if radius <= 0 or not order:
        return None
    if not has_codes(swapper):
        rep.info("--smooth-codes: this model's swap does not split into codes (a DFM file, an amp model), so its "
                 "faces are not averaged over neighbouring frames")
        return None
    n = len(frames)
    wanted = sorted({j for i in order for j in range(max(0, i - radius), min(n, i + radius + 1)) if recs[j]})

    def crops(j: int) -> list[np.ndarray]:
        return _face_crops(read_rgb(frames[j]), lms[j], swapper)

    found: list[list[np.ndarray | None]] = [[None] * len(lms[t]) for t in range(n)]
    step = max(1, cfg.batch_size)
    with rep.task("merge: the faces' codes", len(wanted)) as advance:
        for k in range(0, len(wanted), step):
            rep.check()
            chunk = wanted[k:k + step]
            cut = list(pool.map(crops, chunk))
            flat = run_codes(swapper, [c for faces in cut for c in faces], cfg.batch_size)
            at = 0
            for j, faces in zip(chunk, cut):
                found[j] = flat[at:at + len(faces)]
                at += len(faces)
            advance(len(chunk))
    averaged = T.track_average(lms, found, radius)
    return {i: averaged[i] for i in order if recs[i]}


def frames_to_redo(before: dict | None, cfg: MergeConfig, cfgs: Sequence[MergeConfig], frames: Sequence[Path],
                   reach: int) -> set[int]:
    """Indices of the frames to merge again because only the per-frame ranges changed since the options `before`
    (the last finished run's, as JSON): those whose effective options differ, and the frames within `reach` of
    them (their smoothing looks at those). Empty when the run's own options changed too, or nothing is known."""
    try:
        old = MergeConfig.from_dict(before) if isinstance(before, dict) else None
    except Exception:  # noqa: BLE001 - options of an older version: nothing to compare with
        old = None
    if old is None or old.ranges == cfg.ranges or \
            dataclasses.replace(old, ranges=()) != dataclasses.replace(cfg, ranges=()):
        return set()
    olds = frame_configs(old, frames)
    changed = [i for i in range(len(frames)) if olds[i] != cfgs[i]]
    return {j for i in changed for j in range(max(0, i - reach), min(len(frames), i + reach + 1))}


def _finalize_ready(todo: list[int], pos: int, max_prepared: int, radius: int, n: int, *, last: bool, submit) -> int:
    while pos < len(todo):
        i = todo[pos]
        if not last and i + radius > max_prepared:
            break
        submit(i)
        pos += 1
    return pos


def _evict(prepared: dict, todo: list[int], pos: int, radius: int) -> None:
    """Drop prepared frames no later frame can need."""
    if pos >= len(todo):
        return
    low = todo[pos] - radius
    for i in [i for i in prepared if i < low]:
        del prepared[i]


def _start_run(ws: Workspace, cfg: MergeConfig, force: bool, rep: Reporter) -> tuple[str, dict]:
    """The run id: the previous run's when resuming, a new one otherwise. Warns when the options changed."""
    path = ws.frames("dst") / RUN_NAME
    previous: dict = {}
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
    old_cfg = ws.config_file(MergeConfig)
    if not force and old_cfg.exists():
        try:
            before = MergeConfig.load(old_cfg)
        except Exception:  # noqa: BLE001 - an unreadable old config only loses the warning
            before = None
        # (a change of the per-frame ranges alone: frames_to_redo merges the frames it changes again)
        if before is not None and dataclasses.replace(before, ranges=()) != dataclasses.replace(cfg, ranges=()) \
                and any(ws.merged.glob("*")):
            rep.warn("merged/ holds frames made with other options; they are kept (use --force to merge all again).")
    if not force and previous.get("run_id"):
        return str(previous["run_id"]), previous
    return new_run_id(), previous


def _write_run(ws: Workspace, run_id: str, swapper, cfg: MergeConfig, previous: dict, *, status: str,
               summary: MergeSummary | None = None) -> None:
    data = {
        "run_id": run_id,
        "status": status,
        "model": str(getattr(cfg, "model_file", None) or (Path(cfg.model) if cfg.model else ws.model)),
        "model_face_type": getattr(swapper, "face_type", None),
        "model_resolution": getattr(swapper, "resolution", None),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    # the options of the last finished run: what the frames in merged/ were made with (see frames_to_redo)
    options = cfg.to_dict() if status == "done" else previous.get("options")
    if options is not None:
        data["options"] = options
    if summary is not None:
        data["last"] = dataclasses.asdict(summary) | {"fps": round(summary.fps, 2)}
    write_json_atomic(ws.frames("dst") / RUN_NAME, data)


def _training_hash(ws: Workspace) -> str | None:
    """The fingerprint of the training sets recorded in each image's credentials (None without both sets)."""
    from ..provenance import training_hash

    folders = (ws.aligned("src"), ws.aligned("dst"))
    return training_hash(*folders) if all(f.is_dir() for f in folders) else None


def _write_debug(folder: Path, path: Path, before: np.ndarray, merged: MergedFrame, layers: Sequence[FaceLayer],
                 run_id: str, signer=None) -> None:
    """Per frame: predicted face and masks of each face, and before | after side by side (all marked)."""
    for k, layer in enumerate(layers):
        for name, img in layer.debug.items():
            arr = B.to_uint8(img)
            matte = arr.ndim == 2
            if matte:
                arr = np.repeat(arr[..., None], 3, axis=2)
            write_marked(folder / f"{path.stem}_{k}_{name}.png", arr, run_id, signer=signer, matte=matte)
        write_marked(folder / f"{path.stem}_{k}_mask_final.png",
                     np.repeat(B.to_uint8(layer.mask * K.edge_feather(layer.mask.shape[0]))[..., None], 3, axis=2), run_id,
                     signer=signer, matte=True)
    side = np.concatenate([before, merged.image], axis=1)
    write_marked(folder / f"{path.stem}_compare.jpg", side, run_id, signer=signer)
