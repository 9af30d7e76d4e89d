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

from . import stages as _stages


# The API's functions that are not rows of the stage table (stages.py): a file, a source or a model instead of a
# workspace, or a helper of a stage. Each imports on first use.
def _cut_video():
    from .video.cut import cut_video
    return cut_video


def _extract_with_rect():
    from .extract import extract_with_rect
    return extract_with_rect


def _xseg_fetch():
    from .xseg.labels import fetch_labelled
    return fetch_labelled


def _xseg_export_labels():
    from .xseg.labels import export_labels
    return export_labels


def _xseg_import_labels():
    from .xseg.labels import import_labels
    return import_labels


def _load_xseg():
    from .xseg.network import load_xseg
    return load_xseg


def _export_onnx():
    from .train.export import export_onnx
    return export_onnx


def _export_dfm():
    from .train.export import export_dfm
    return export_dfm


def _load_model():
    from .inference import load_model
    return load_model


def _live():
    from .live.pipeline import live
    return live


def _live_session():
    from .live.pipeline import LiveSession
    return LiveSession


def _load_swapper():
    from .train.swapper import load_swapper
    return load_swapper


def _merge_frame():
    from .merge.compose import merge_frame
    return merge_frame


def _verify_file():
    from .provenance.verify import verify_file
    return verify_file


def _run():
    from .pipeline import run
    return run


_FUNCTIONS = {s.api: s.load for s in _stages.STAGES} | {
    "cut_video": _cut_video, "extract_with_rect": _extract_with_rect, "xseg_fetch": _xseg_fetch,
    "xseg_export_labels": _xseg_export_labels, "xseg_import_labels": _xseg_import_labels, "load_xseg": _load_xseg,
    "export_onnx": _export_onnx, "export_dfm": _export_dfm, "load_model": _load_model, "live": _live,
    "LiveSession": _live_session, "load_swapper": _load_swapper, "merge_frame": _merge_frame,
    "verify_file": _verify_file, "run": _run,
}

__all__ = sorted(_FUNCTIONS) + ["Workspace", "Reporter", "FaceDoubleError", "DenoiseConfig", "ExtractConfig",
                                "LiveConfig", "MergeConfig", "ReportConfig", "RunConfig", "SortConfig", "TrainConfig",
                                "VideoBuildConfig", "VideoCutConfig", "VideoExtractConfig", "XSegTrainConfig"]


def __getattr__(name: str) -> Any:
    if name in _FUNCTIONS:
        from .allocator import tune
        from .native_logs import silence

        tune()  # frame-sized buffers reused instead of faulted in afresh (see allocator.py)
        silence()  # mediapipe's native log lines stay out of the output (see native_logs.py)
        return _FUNCTIONS[name]()
    raise AttributeError(f"module 'facedouble.api' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
