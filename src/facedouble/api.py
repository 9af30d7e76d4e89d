"""The Python API: one function per stage, the very functions the CLI and the browser UI call.

    from facedouble import api
    ws = api.Workspace("ws").create()
    api.extract_frames(ws, "src", api.VideoExtractConfig(fps=8))
    api.extract_frames(ws, "dst")
    api.extract_faces(ws, "src"); api.extract_faces(ws, "dst")
    api.train(ws, api.TrainConfig(model="quick96"), max_seconds=600)
    api.merge(ws, api.MergeConfig(mode="seamless", color_transfer="rct"))
    api.build_video(ws)
    api.verify_file(ws.result())

Each stage takes a Workspace and its config object (defaults when omitted) and an optional `reporter`
(progress, warnings, cancellation); errors are `facedouble.errors.FaceDoubleError` subclasses.
Imports are lazy so `import facedouble.api` stays fast.
"""

from __future__ import annotations

from typing import Any

from .config import (DenoiseConfig, ExtractConfig, LiveConfig, MergeConfig, ReportConfig, RunConfig, SortConfig, TrainConfig,
                     VideoBuildConfig, VideoCutConfig, VideoExtractConfig, XSegTrainConfig)
from .errors import FaceDoubleError
from .progress import Reporter
from .workspace import Workspace

_STAGES = {
    # name: (module, function)
    "extract_frames": ("facedouble.video.frames", "extract_frames"),
    "cut_video": ("facedouble.video.cut", "cut_video"),
    "denoise_frames": ("facedouble.video.denoise", "denoise_frames"),
    "build_video": ("facedouble.video.build", "build_video"),
    "extract_faces": ("facedouble.extract", "extract"),
    "extract_with_rect": ("facedouble.extract", "extract_with_rect"),
    "manual_fix_deleted": ("facedouble.extract", "manual_fix_deleted"),
    "sort_faces": ("facedouble.sort.sorting", "sort_faces"),
    "undo_sort": ("facedouble.sort.sorting", "undo_sort"),
    "train": ("facedouble.train.trainer", "train"),
    "xseg_train": ("facedouble.xseg.train", "train_xseg"),
    "xseg_apply": ("facedouble.xseg.apply", "apply_xseg"),
    "xseg_remove": ("facedouble.xseg.apply", "remove_xseg"),
    "xseg_fetch": ("facedouble.xseg.labels", "fetch_labelled"),
    "xseg_export_labels": ("facedouble.xseg.labels", "export_labels"),
    "xseg_import_labels": ("facedouble.xseg.labels", "import_labels"),
    "load_xseg": ("facedouble.xseg.network", "load_xseg"),
    "export_onnx": ("facedouble.train.export", "export_onnx"),
    "export_dfm": ("facedouble.train.export", "export_dfm"),
    "load_model": ("facedouble.inference", "load_model"),
    "live": ("facedouble.live.pipeline", "live"),
    "LiveSession": ("facedouble.live.pipeline", "LiveSession"),
    "load_swapper": ("facedouble.train.checkpoint", "load_swapper"),
    "merge": ("facedouble.merge.merger", "merge"),
    "merge_frame": ("facedouble.merge.merger", "merge_frame"),
    "make_report": ("facedouble.report", "make_report"),
    "verify_file": ("facedouble.provenance.verify", "verify_file"),
    "run": ("facedouble.pipeline", "run"),
}

__all__ = sorted(_STAGES) + ["Workspace", "Reporter", "FaceDoubleError", "DenoiseConfig", "ExtractConfig", "LiveConfig",
                             "MergeConfig", "ReportConfig", "RunConfig", "SortConfig", "TrainConfig",
                             "VideoBuildConfig", "VideoCutConfig", "VideoExtractConfig", "XSegTrainConfig"]


def __getattr__(name: str) -> Any:
    if name in _STAGES:
        import importlib

        from .allocator import tune
        from .native_logs import silence

        tune()  # frame-sized buffers reused instead of faulted in afresh (see allocator.py)
        silence()  # mediapipe's native log lines stay out of the output (see native_logs.py)

        module, attr = _STAGES[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'facedouble.api' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
