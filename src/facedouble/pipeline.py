"""`run`: the stages chained, each with its saved config (so a run repeats the last one) or the defaults.
The stage functions come from the stage table (stages.py); their config files from `Workspace.config_file`.

video extract src and dst -> extract faces src and dst -> train -> merge -> video build. Every stage resumes,
so an interrupted run continues where it stopped when started again.

Each stage runs in `stage_scope`, which puts back the process settings a stage could leave behind (torch's and
OpenCV's thread counts, autograd, the thread-count variables) and collects its garbage, so every stage runs as
it would alone. Measured on the 360p sample (2 cores shared with other programs, load ~23, same workspace): the
merge inside `run`, after extraction with worker processes and training, needed 179 CPU-ms per frame, the same
merge alone 178; at load ~13, merge after training in the same process 104, alone 119-120. A merge slower inside
`run` than alone is waiting for cores other programs hold, not paying for what training left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TypeVar

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


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class ProcessSettings:
    """What one stage could leave behind for the next in the same process and slow it down: torch's and
    OpenCV's thread counts, autograd, the thread-count variables. Read without importing torch or cv2."""
    torch_threads: int | None
    grad_enabled: bool | None
    cv2_threads: int | None
    variables: tuple[tuple[str, str | None], ...]

    @classmethod
    def capture(cls) -> "ProcessSettings":
        torch, cv2 = sys.modules.get("torch"), sys.modules.get("cv2")
        return cls(torch.get_num_threads() if torch else None, torch.is_grad_enabled() if torch else None,
                   cv2.getNumThreads() if cv2 and hasattr(cv2, "getNumThreads") else None,
                   tuple((k, os.environ.get(k)) for k in THREAD_VARIABLES))

    def restore(self) -> None:
        torch, cv2 = sys.modules.get("torch"), sys.modules.get("cv2")
        if torch is not None and self.torch_threads is not None and torch.get_num_threads() != self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        if torch is not None and self.grad_enabled is not None:
            torch.set_grad_enabled(self.grad_enabled)
        if cv2 is not None and self.cv2_threads is not None and cv2.getNumThreads() != self.cv2_threads:
            cv2.setNumThreads(self.cv2_threads)
        for key, value in self.variables:
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def stage_scope() -> Iterator[None]:
    """Run one stage of `run` so that the next starts as it would alone: the process settings as before, and
    the stage's garbage (the training set, the networks, loader buffers) collected before the next one runs."""
    before = ProcessSettings.capture()
    try:
        yield
    finally:
        before.restore()
        gc.collect()


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
    from .train.options import changeable_options

    model = checkpoint.model_to_train(ws.model, cfg.model)
    files = checkpoint.ModelFiles(ws.model, model)
    base = checkpoint.load_options(files) if files.options.exists() else None
    train_cfg = TrainConfig(model=model, device=cfg.device)
    if base is not None:  # an existing model keeps its options; only the target can change here
        train_cfg = dataclasses.replace(train_cfg, **{k: getattr(base, k) for k in changeable_options()
                                                      if getattr(base, k, None) is not None})
    return train_cfg


def run(ws: Workspace, cfg: RunConfig | None = None, *, reporter: Reporter | None = None) -> RunResult:
    from .stages import stage

    extract_frames, extract, train = (stage(n).function() for n in ("video-extract", "extract", "train"))
    merge, build_video = (stage(n).function() for n in ("merge", "build"))

    import cv2  # noqa: F401 - imported first, so that stage_scope keeps their settings as a fresh process has them
    import torch  # noqa: F401

    cfg = cfg or RunConfig()
    rep = reporter or Reporter()
    ws.require()
    cfg.save(ws.config_file(RunConfig))

    for side in ("src", "dst"):
        vcfg = saved(VideoExtractConfig, ws.config_file(VideoExtractConfig, side)).override(format=cfg.frame_format)
        if side == "src":
            vcfg = vcfg.override(fps=cfg.src_fps)
        else:
            vcfg = dataclasses.replace(vcfg, fps=None)
        rep.info(f"[run] frames of data_{side}")
        with stage_scope():
            extract_frames(ws, side, vcfg, reporter=rep)

    for side in ("src", "dst"):
        ecfg = saved(ExtractConfig, ws.config_file(ExtractConfig, side)).override(detector=cfg.detector, device=cfg.device)
        rep.info(f"[run] faces of data_{side}")
        with stage_scope():
            extract(ws, side, ecfg, reporter=rep)

    rep.info("[run] training")
    tcfg = _train_config(ws, cfg)
    seconds = cfg.train_minutes * 60 if cfg.train_minutes else None
    if cfg.train_iterations:
        tcfg = tcfg.override(target_iteration=cfg.train_iterations, override_options=True)
    with stage_scope():
        trained = train(ws, tcfg, reporter=rep, max_seconds=seconds)

    mcfg = saved(MergeConfig, ws.config_file(MergeConfig)).override(
        mode=cfg.mode, mask=cfg.mask, color_transfer=cfg.color_transfer, device=cfg.device)
    mcfg = dataclasses.replace(mcfg, model_name=tcfg.model)
    rep.info("[run] merging")
    # frames merged by an older model are redone; an interrupted merge of this model resumes
    with stage_scope():
        merged = merge(ws, mcfg, reporter=rep, force=trained.iterations_run > 0)

    rep.info("[run] building the result video")
    with stage_scope():
        built = build_video(ws, VideoBuildConfig(format=cfg.format), reporter=rep)
    return RunResult(result=built.path, src_faces=len(ws.face_files("src")), dst_faces=len(ws.face_files("dst")),
                     iteration=trained.iteration, merged_frames=merged.frames)
