"""The report stage: score a result against dst (and src) and write report.html + report.json.

Inputs (explicit files win over the workspace's):
  * dst: --dst, else data_dst/ frames, else data_dst.*; dst faces come from data_dst/aligned records when dst
    is the workspace's (what the merge used), else from the detector;
  * result: --result, else result.mp4 (or another result.* video), else data_dst/merged/; paired with dst by
    frame number; data_dst/merged_mask/ gives the face mask of each frame when the result is the workspace's;
  * src: --src, else data_src/aligned (the embeddings stored in the records), else data_src frames or data_src.*.

Sampling: every Nth frame (`every`; 0 = about `samples` frames spread over the clip) plus the two frames
after each one, for flicker and jitter. The stage saves its options as report_config.json beside the report.
It holds no state to resume: a cancelled run writes nothing and a re-run starts over (a minute or two).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import ReportConfig
from ..errors import InputError, MetadataError, OptionError, WorkspaceError
from ..progress import Reporter
from ..workspace import VIDEO_SUFFIXES, Workspace
from . import metrics as M
from . import page
from . import scoring as S
from .sources import FrameSource, Pair, open_source, pair_frames, read_grey

REPORT_DIR = "report"
HTML_NAME = "report.html"
JSON_NAME = "report.json"
CONFIG_NAME = "report_config.json"
DST_EMBEDDINGS = 24         # dst faces embedded for the dst centroid when data_dst/aligned has no stored ones
SETTINGS_MAX_BYTES = 2_000_000
LIST_KEEP = 20              # settings lists longer than this are shortened in the report


@dataclasses.dataclass
class ReportResult:
    html: Path
    json: Path
    summary: dict[str, Any]
    frames_scored: int
    seconds: float


@dataclasses.dataclass
class Inputs:
    dst: FrameSource
    result: FrameSource
    pairs: list[Pair]
    masks: dict[int, Path]
    dst_records: dict[int, tuple[np.ndarray, np.ndarray | None]] | None
    src_folder: Path | None
    src_sources: list[FrameSource]
    settings_root: Path | None
    out: Path
    notes: list[str]


# -- inputs ----------------------------------------------------------------------------------------------------

def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _workspace_result(ws: Workspace) -> Path | None:
    # result.mp4 (or .mov, .avi, ...); never a backup such as result.1.mp4
    videos = sorted(p for p in ws.root.glob("result.*")
                    if p.is_file() and p.stem == "result" and p.suffix.lower() in VIDEO_SUFFIXES)
    if videos:
        return next((p for p in videos if p.suffix.lower() == ".mp4"), videos[0])
    from ..video.images import numbered_images

    return ws.merged if numbered_images(ws.merged) else None


def _dst_records(ws: Workspace) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """Frame number -> (source landmarks, identity) of the largest aligned dst face of that frame."""
    from ..faces.container import read_record

    best: dict[int, tuple[float, np.ndarray, np.ndarray | None]] = {}
    for p in ws.face_files("dst"):
        try:
            rec = read_record(p)
        except (MetadataError, OSError):
            continue
        stem = Path(rec.source_filename).stem if rec is not None else ""
        if not stem.isdigit():
            continue
        number = int(stem)
        size = S.face_size(rec.source_landmarks)
        if number not in best or size > best[number][0]:
            best[number] = (size, rec.source_landmarks, rec.identity)
    return {n: (lm, ident) for n, (_, lm, ident) in best.items()}


def resolve_inputs(ws: Workspace | None, cfg: ReportConfig) -> Inputs:
    """Find dst, result and src (explicit files first, then the workspace's); clear errors when missing."""
    ws_ok = ws is not None and ws.root.is_dir()
    where = f"workspace {ws.root}" if ws is not None else "no workspace"
    notes: list[str] = []

    if cfg.result:
        result = open_source(cfg.result, "Result")
    elif ws_ok:
        found = _workspace_result(ws)
        if found is None:
            raise InputError(f"No result in {ws.root}: run `facedouble merge` (and `facedouble video build`), "
                             "or give the result with --result FILE.")
        result = open_source(found, "Result")
    else:
        raise WorkspaceError(f"There is no {where} to take the result from; give -w WORKSPACE, or --result, --dst and "
                             "--src files.")

    if cfg.dst:
        dst = open_source(cfg.dst, "dst")
    elif ws_ok:
        dst = open_source(ws.frames("dst"), "dst") if ws.frame_files("dst") else open_source(ws.video("dst"), "dst")
    else:
        raise OptionError("Give the dst video (the original the result was made from) with --dst FILE.")

    from_ws = ws_ok and (not cfg.result or _inside(Path(cfg.result), ws.root))
    masks: dict[int, Path] = {}
    if from_ws:
        from ..video.images import numbered_images

        masks = dict(numbered_images(ws.merged_mask))
    dst_records = None
    if ws_ok and not cfg.dst and ws.face_files("dst"):
        dst_records = _dst_records(ws)
        if not dst_records:
            notes.append(f"{ws.aligned('dst')} holds no readable face records; dst faces were detected instead.")
            dst_records = None

    src_folder, src_sources = None, []
    if cfg.src:
        src_sources = [open_source(p, "src") for p in cfg.src]
    elif ws_ok and ws.face_files("src"):
        src_folder = ws.aligned("src")
    elif ws_ok and ws.frame_files("src"):
        src_sources = [open_source(ws.frames("src"), "src")]
    elif ws_ok and any(p.suffix.lower() in VIDEO_SUFFIXES for p in ws.root.glob("data_src.*")):
        src_sources = [open_source(ws.video("src"), "src")]
    else:
        raise OptionError(f"No src to compare identity with in {where}; give --src FILE (a video or photos of the src "
                          "person), or extract data_src first.")

    pairs = pair_frames(dst, result)
    if not pairs:
        raise InputError(f"The result {result.path} and dst {dst.path} share no frame numbers; give the result made "
                         "from this dst.")
    if result.count != dst.count:
        notes.append(f"The result has {result.count} frames and dst {dst.count}; {len(pairs)} paired frames were "
                     "scored.")

    if cfg.out:
        out = Path(cfg.out).expanduser()
    elif ws_ok:
        out = ws.root / REPORT_DIR
    else:
        out = Path(cfg.result).expanduser().resolve().parent / REPORT_DIR

    settings_root = ws.root if ws_ok else None
    if settings_root is None and cfg.result:
        parent = Path(cfg.result).expanduser().resolve().parent
        if (parent / "model").is_dir() or (parent / "data_dst").is_dir():
            settings_root = parent
    return Inputs(dst, result, pairs, masks, dst_records, src_folder, src_sources, settings_root, out, notes)


# -- settings --------------------------------------------------------------------------------------------------

def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        if len(value) > LIST_KEEP:
            return {"items": len(value), "first": [_compact(v) for v in value[:5]]}
        return [_compact(v) for v in value]
    return value


def read_settings(root: Path | None) -> dict[str, Any]:
    """The JSON files the stages saved in a workspace (its root, model/, data_src/, data_dst/), by relative
    path. A model's loss history is summarised (iterations, mean of the last 100); long lists are shortened."""
    if root is None:
        return {}
    out: dict[str, Any] = {}
    for folder in (root, root / "model", root / "data_src", root / "data_dst"):
        if not folder.is_dir():
            continue
        for p in sorted(folder.glob("*.json")):
            if p.name.startswith(".") or not p.is_file():
                continue
            name = p.relative_to(root).as_posix()
            if p.stat().st_size > SETTINGS_MAX_BYTES:
                out[name] = {"skipped": f"larger than {SETTINGS_MAX_BYTES // 1_000_000} MB"}
                continue
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                out[name] = {"unreadable": str(e)}
                continue
            if isinstance(data, dict) and isinstance(data.get("loss_history"), list):
                hist = np.asarray(data["loss_history"], np.float64).reshape(-1, 2) if data["loss_history"] else np.zeros((0, 2))
                data["loss_history"] = {"iterations": int(len(hist)),
                                        "last_100_mean_src_dst": hist[-100:].mean(0).round(5).tolist() if len(hist) else None}
            out[name] = _compact(data)
    return out


# -- the stage -------------------------------------------------------------------------------------------------

def _runs(pairs: list[Pair], every: int) -> list[list[int]]:
    """Positions in `pairs` of each sample: the frame and up to two consecutive frames after it."""
    runs = []
    for p in range(0, len(pairs), every):
        run = [p]
        for q in (p + 1, p + 2):
            if q < len(pairs) and pairs[q].number == pairs[q - 1].number + 1:
                run.append(q)
            else:
                break
        runs.append(run)
    return runs


def choose_every(frames: int, cfg: ReportConfig) -> int:
    return cfg.every if cfg.every > 0 else max(1, math.ceil(frames / cfg.samples))


def _mask_for(inp: Inputs, number: int, shape: tuple[int, int]) -> np.ndarray | None:
    path = inp.masks.get(number)
    if path is None:
        return None
    import cv2

    m = read_grey(path)
    if m.shape[:2] != shape:
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return m


def _score_clip(inp: Inputs, cfg: ReportConfig, models: S.FaceModels, src: S.SrcFaces | None, rep: Reporter,
                embed_dst: bool) -> list[S.SampleOutput]:
    import cv2

    every = choose_every(len(inp.pairs), cfg)
    runs = _runs(inp.pairs, every)
    needed = sorted({q for run in runs for q in run})
    dst_frames = inp.dst.read([inp.pairs[q].dst for q in needed])
    res_frames = inp.result.read([inp.pairs[q].result for q in needed])
    positions = iter(needed)
    embed_step = max(1, math.ceil(len(runs) / DST_EMBEDDINGS))
    buffer: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    outputs = []
    resized = False
    mark: Callable[[np.ndarray], np.ndarray] | None = None  # read from the first result frame
    with rep.task("Scoring frames", len(runs)) as advance:
        for k, run in enumerate(runs):
            rep.check()
            while run[-1] not in buffer:
                q = next(positions)
                _, fd = next(dst_frames)
                _, fr = next(res_frames)
                if fr.shape != fd.shape:
                    fr = cv2.resize(fr, (fd.shape[1], fd.shape[0]), interpolation=cv2.INTER_AREA)
                    resized = True
                buffer[q] = (fd, fr)
            pair = inp.pairs[run[0]]
            record = inp.dst_records.get(pair.number) if inp.dst_records is not None else None
            fd0 = buffer[run[0]][0]
            if k == 0:
                mark = provenance_marker(buffer[run[0]][1])
            sample = S.Sample(
                number=pair.number, dst=[buffer[q][0] for q in run], result=[buffer[q][1] for q in run],
                merged_mask=_mask_for(inp, pair.number, fd0.shape[:2]),
                dst_landmarks=None if record is None else record[0], known_dst=inp.dst_records is not None,
                embed_dst=embed_dst and k % embed_step == 0,
                marked_dst=[mark(buffer[q][0]) for q in run] if mark is not None else None)
            outputs.append(S.score_sample(models, sample, src=src))
            keep_from = runs[k + 1][0] if k + 1 < len(runs) else len(inp.pairs)
            for q in [q for q in buffer if q < keep_from]:
                del buffer[q]
            advance(1)
    if resized:
        inp.notes.append("The result's frames are not the size of dst's; they were resized to dst's size to be scored.")
    return outputs


def provenance_marker(result_frame: np.ndarray) -> Callable[[np.ndarray], np.ndarray] | None:
    """The function that puts the result's own invisible mark (its run id, read from `result_frame`) on a dst
    frame, or None when the result carries no readable mark. Scoring the background against dst so marked
    measures what the merge changed, apart from the mark every output must carry."""
    from ..provenance import mark_frame, watermark

    det = watermark.detect(result_frame)
    if not det.found or not det.payload:
        return None
    run_id = str(det.payload["run_id"])
    return lambda frame: mark_frame(frame, run_id)


def make_report(ws: Workspace | None, cfg: ReportConfig | None = None, *,
                reporter: Reporter | None = None) -> ReportResult:
    """Score a face-swap result against dst and src and write report.html + report.json (see the module doc).

    Args:
        ws: the workspace (its result, dst, src, merge masks and saved settings), or None when cfg names
            --result, --dst and --src files.
        cfg: the report's options.
        reporter: progress and cancellation.

    Returns:
        ReportResult with the paths written and the summary (checks against the DESIGN.md section 4 targets).
    """
    cfg = cfg or ReportConfig()
    rep = reporter or Reporter()
    started = time.monotonic()
    inp = resolve_inputs(ws, cfg)
    from ..video.images import ensure_writable

    ensure_writable(inp.out)
    targets = M.Targets(detail=cfg.detail_target, landmarks=cfg.landmark_target, flicker=cfg.flicker_target,
                        background_db=cfg.background_target, identity=cfg.identity_target)
    models = S.face_models(cfg.detector, cfg.device)

    # src
    t0 = time.monotonic()
    if inp.src_folder is not None:
        src = S.src_from_records(inp.src_folder, cfg.src_faces, rep.check)
    else:
        src = S.src_from_frames(inp.src_sources, models, cfg.src_faces, rep.check)
    src_seconds = time.monotonic() - t0
    src_centroid = src.centroid if src.embeddings else None
    if src_centroid is None:
        rep.warn(f"No src face was found in {src.origin}; identity cannot be measured.")
        inp.notes.append(f"No src face was found in {src.origin}, so identity was not measured.")

    # dst centroid from stored embeddings, when there are
    dst_stored = [ident for _, ident in (inp.dst_records or {}).values() if ident is not None]

    t0 = time.monotonic()
    outputs = _score_clip(inp, cfg, models, src, rep, embed_dst=not dst_stored)
    score_seconds = time.monotonic() - t0
    dst_embs = dst_stored or [o.dst_embedding for o in outputs if o.dst_embedding is not None]
    dst_centroid = M.robust_centroid(dst_embs) if dst_embs else None
    if dst_centroid is None:
        inp.notes.append("No dst face could be embedded, so the distance to dst (and identity retrieval) is missing.")

    scores = [o.score for o in outputs]
    for o in outputs:
        if src_centroid is not None:
            o.score.d_src, o.score.d_dst = S.distances(o.result_embedding, src_centroid, dst_centroid)
        o.score.badness, o.score.problems = M.frame_badness(o.score, targets)
    summary = M.summarize(scores, targets)
    worst = M.worst_frames(scores, cfg.worst)
    worst_ids = {id(s) for s in worst}
    thumbs = {o.score.number: o.thumbs for o in outputs if id(o.score) in worst_ids}

    bl = summary["blending"]
    bg_check = next(c for c in summary["checks"] if c["name"].startswith("background"))
    if bg_check["pass"] is False and not np.isfinite(bl["background_merge_psnr_db"]) \
            and np.isfinite(bl["background_changed_share"] or np.nan) \
            and bl["background_changed_share"] < 0.001:
        inp.notes.append(
            f"The background misses {cfg.background_target:g} dB, yet fewer than 0.1% of its pixels changed by more than "
            f"{M.CHANGED_LEVEL} levels: the difference is faint and spread out, as the invisible provenance mark on "
            "every merged frame (about 40-42 dB by itself) and video re-encoding make it, "
            "rather than a visible change.")

    cov = summary["coverage"]
    every = choose_every(len(inp.pairs), cfg)
    data = {
        "version": 1,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "coverage_text": (f"{cov['frames_scored']} of {len(inp.pairs)} frames scored (one in {every}; the two frames "
                          "after each are read for flicker and jitter)"),
        "summary": summary,
        "notes": inp.notes,
        "inputs": {"result": inp.result.describe(), "dst": inp.dst.describe(), "src": src.origin,
                   "dst faces": ("data_dst/aligned records" if inp.dst_records is not None else f"detector {cfg.detector}"),
                   "dst centroid": (f"{len(dst_stored)} stored embeddings" if dst_stored else
                                    f"{len(dst_embs)} sampled dst faces"),
                   "face masks": "data_dst/merged_mask" if inp.masks else "hull of dst's 68 landmarks, dilated",
                   "frames paired": len(inp.pairs), "every": every},
        "settings": read_settings(inp.settings_root),
        "config": cfg.to_dict(),
        "worst": [s.to_json() for s in worst],
        "frames": [s.to_json() for s in scores],
        "timing": {"seconds_total": round(time.monotonic() - started, 2), "seconds_src": round(src_seconds, 2),
                   "seconds_scoring": round(score_seconds, 2),
                   "seconds_per_frame": round(score_seconds / max(1, len(scores)), 3)},
    }
    rep.check()
    html_path, json_path = page.write_report(inp.out, data, thumbs, page.plots(scores, targets),
                                             html_name=HTML_NAME, json_name=JSON_NAME)
    cfg.save(inp.out / CONFIG_NAME)
    return ReportResult(html_path, json_path, M.clean(summary), len(scores), time.monotonic() - started)
