"""`run`: the stages chained, each with its saved config (so a run repeats the last one) or the defaults.

video extract src and dst -> extract faces src and dst -> train -> merge -> video build. Every stage resumes,
so an interrupted run continues where it stopped when started again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .config import ExtractConfig, MergeConfig, RunConfig, StageConfig, TrainConfig, VideoBuildConfig, VideoExtractConfig
from .progress import Reporter
from .workspace import Workspace

C = TypeVar("C", bound=StageConfig)


@dataclass
class RunResult:
    result: Path
    src_faces: int
    dst_faces: int
    iteration: int
    merged_frames: int


def saved(cls: type[C], path: Path) -> C:
    """The config saved at `path` if there is a readable one, else the defaults."""
    if path.is_file():
        try:
            return cls.load(path)
        except Exception:  # noqa: BLE001 - a stale or foreign file: fall back to the defaults
            return cls()
    return cls()


def _train_config(ws: Workspace, cfg: RunConfig) -> TrainConfig:
    from .train import checkpoint

    files = checkpoint.ModelFiles(ws.model, cfg.model)
    base = checkpoint.load_options(files) if files.options.exists() else None
    train_cfg = TrainConfig(model=cfg.model, device=cfg.device)
    if base is not None:  # an existing model keeps its options; only the target can change here
        train_cfg = dataclasses.replace(train_cfg, **{k: getattr(base, k) for k in checkpoint.changeable_options()
                                                      if getattr(base, k, None) is not None})
    return train_cfg


def run(ws: Workspace, cfg: RunConfig | None = None, *, reporter: Reporter | None = None) -> RunResult:
    from .extract import extract
    from .merge.merger import merge
    from .train.trainer import train
    from .video.build import build_video
    from .video.frames import extract_frames

    cfg = cfg or RunConfig()
    rep = reporter or Reporter()
    ws.require()
    cfg.save(ws.root / "run.json")

    for side in ("src", "dst"):
        vcfg = saved(VideoExtractConfig, ws.frames(side) / "video_extract.json").override(format=cfg.frame_format)
        if side == "src":
            vcfg = vcfg.override(fps=cfg.src_fps)
        else:
            vcfg = dataclasses.replace(vcfg, fps=None)
        rep.info(f"[run] frames of data_{side}")
        extract_frames(ws, side, vcfg, reporter=rep)

    for side in ("src", "dst"):
        ecfg = saved(ExtractConfig, ws.frames(side) / "extract.json").override(detector=cfg.detector, device=cfg.device)
        rep.info(f"[run] faces of data_{side}")
        extract(ws, side, ecfg, reporter=rep)

    rep.info("[run] training")
    tcfg = _train_config(ws, cfg)
    seconds = cfg.train_minutes * 60 if cfg.train_minutes else None
    if cfg.train_iterations:
        tcfg = tcfg.override(target_iteration=cfg.train_iterations, override_options=True)
    trained = train(ws, tcfg, reporter=rep, max_seconds=seconds)

    mcfg = saved(MergeConfig, ws.frames("dst") / "merge_config.json").override(
        mode=cfg.mode, mask=cfg.mask, color_transfer=cfg.color_transfer, device=cfg.device)
    mcfg = dataclasses.replace(mcfg, model_name=cfg.model)
    rep.info("[run] merging")
    # frames merged by an older model are redone; an interrupted merge of this model resumes
    merged = merge(ws, mcfg, reporter=rep, force=trained.iterations_run > 0)

    rep.info("[run] building the result video")
    built = build_video(ws, VideoBuildConfig(format=cfg.format), reporter=rep)
    return RunResult(result=built.path, src_faces=len(ws.face_files("src")), dst_faces=len(ws.face_files("dst")),
                     iteration=trained.iteration, merged_frames=merged.frames)
