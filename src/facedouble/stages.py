"""THE stage table: every stage once, with its function, its config class and whether it runs per side.

The CLI's pipeline order, the Python API (`facedouble.api`), `run` (pipeline.py) and the browser UI's jobs all
read this table, so a stage is added or renamed in one place. Where a stage saves its options is its config
class's (`StageConfig.FILE` / `PLACE`, answered by `Workspace.config_file`).

Each stage function is imported on first use (`Stage.function()`), so importing the table, the API or the CLI
stays fast; the imports are plain `from ... import ...` statements that any tool can follow.

    from facedouble.stages import stage
    stage("merge").call(ws, cfg=MergeConfig(), reporter=rep, force=True)
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Optional

from .config import (DenoiseConfig, ExtractConfig, MergeConfig, ReportConfig, SortConfig, StageConfig, TrainConfig,
                     VideoBuildConfig, VideoExtractConfig, XSegTrainConfig)
from .errors import OptionError


def _video_extract():
    from .video.frames import extract_frames
    return extract_frames


def _extract():
    from .extract import extract
    return extract


def _manual_fix_deleted():
    from .extract import manual_fix_deleted
    return manual_fix_deleted


def _denoise():
    from .video.denoise import denoise_frames
    return denoise_frames


def _sort():
    from .sort import sort_faces
    return sort_faces


def _sort_undo():
    from .sort import undo_sort
    return undo_sort


def _train():
    from .train.trainer import train
    return train


def _xseg_train():
    from .xseg.train import train_xseg
    return train_xseg


def _xseg_apply():
    from .xseg.apply import apply_xseg
    return apply_xseg


def _xseg_remove():
    from .xseg.apply import remove_xseg
    return remove_xseg


def _merge():
    from .merge.merger import merge
    return merge


def _build():
    from .video.build import build_video
    return build_video


def _report():
    from .report import make_report
    return make_report


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: `name` as the CLI and the UI say it, `api` its name in facedouble.api, `load` imports and
    returns its function, `config` its options (None: it takes none), `sided` whether it runs on src or dst.
    Stages that are not about a workspace (`video cut` takes a file, `live` a source) are the API's plain
    functions, not rows here."""

    name: str
    api: str
    load: Callable[[], Callable[..., Any]]
    config: Optional[type[StageConfig]]
    sided: bool = False
    ui: bool = True         # a job of the browser UI's stage forms (the others have their own tab or none)
    resumes_saved: bool = False  # a re-run starts from the options the stage saved in the workspace (the UI's base)

    def function(self) -> Callable[..., Any]:
        return self.load()

    def call(self, ws: Any, *, side: Optional[str] = None, cfg: Optional[StageConfig] = None, **extra: Any) -> Any:
        """Run the stage: fn(ws, [side], [cfg], reporter=..., <extra the function takes>). Extra keywords the
        function does not take are left out (the UI passes the same set to every stage)."""
        fn = self.function()
        args: list[Any] = [ws]
        if self.sided:
            if side not in ("src", "dst"):
                raise OptionError(f"The {self.name} stage runs on src or dst; give one, not {side!r}.")
            args.append(side)
        if self.config is not None:
            args.append(cfg)
        taken = inspect.signature(fn).parameters
        return fn(*args, **{k: v for k, v in extra.items() if k in taken})


# In pipeline order. The UI's forms and jobs, the API's stage names and `run` come from here.
STAGES: tuple[Stage, ...] = (
    Stage("video-extract", "extract_frames", _video_extract, VideoExtractConfig, sided=True),
    Stage("denoise", "denoise_frames", _denoise, DenoiseConfig, ui=False),
    Stage("extract", "extract_faces", _extract, ExtractConfig, sided=True, resumes_saved=True),
    Stage("manual-fix-deleted", "manual_fix_deleted", _manual_fix_deleted, ExtractConfig, sided=True,
          resumes_saved=True),
    Stage("sort", "sort_faces", _sort, SortConfig, sided=True),
    Stage("sort-undo", "undo_sort", _sort_undo, None, sided=True),
    Stage("train", "train", _train, TrainConfig),
    Stage("xseg-train", "xseg_train", _xseg_train, XSegTrainConfig, ui=False),
    Stage("xseg-apply", "xseg_apply", _xseg_apply, None, sided=True, ui=False),
    Stage("xseg-remove", "xseg_remove", _xseg_remove, None, sided=True, ui=False),
    Stage("merge", "merge", _merge, MergeConfig, resumes_saved=True),
    Stage("build", "build_video", _build, VideoBuildConfig),
    Stage("report", "make_report", _report, ReportConfig),
)

_BY_NAME = {s.name: s for s in STAGES}
_BY_API = {s.api: s for s in STAGES}


def stage(name: str) -> Stage:
    """The stage of a CLI/UI name; OptionError naming the choices otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise OptionError(f"Unknown stage {name!r}; one of {', '.join(_BY_NAME)}.") from None


def stage_names() -> tuple[str, ...]:
    return tuple(_BY_NAME)


def by_api_name(name: str) -> Optional[Stage]:
    return _BY_API.get(name)
