"""Named option values shared by the CLI, the config files and the browser UI.

Every option that picks among alternatives is a `Literal` here; `values(T)` lists them.
"""

from __future__ import annotations

from typing import Literal, get_args

Side = Literal["src", "dst"]
ImageFormat = Literal["png", "jpg"]
VideoFormat = Literal["mp4", "avi", "mp4-lossless", "mov-alpha"]
Detector = Literal["auto", "mt", "dlib", "dlib-cnn", "mediapipe", "manual"]
FaceType = Literal["half", "mid-full", "full", "whole-face", "head"]
TargetPick = Literal["largest", "reference", "track"]

SortMethod = Literal[
    "blur", "motion-blur", "face-yaw", "face-pitch", "hist", "hist-dissim", "brightness", "hue",
    "black", "source-rect-size", "origname", "oneface", "identity", "final",
]

ModelPreset = Literal["cpu192", "liae192", "quick96", "lean96", "h64", "h128", "df", "liaef128", "amp", "sae"]
DEFAULT_MODEL: ModelPreset = "liae192"   # of `train`, `run` and `make demo`: the best face per CPU-hour (docs/quality.md)
Archi = Literal["df", "liae", "vg", "amp"]
ColorTransfer = Literal["none", "rct", "lct", "mkl", "idt", "sot"]
TrainColorTransfer = ColorTransfer   # training uses the merge's colour transfers (merge/color.py), every one
OptimizerMode = Literal["1", "2", "3"]
ExportFormat = Literal["onnx", "dfm"]   # export-onnx --format: facedouble's graph, or a DFM file for live apps
LiveMask = Literal["learned", "dst"]     # live --mask: the masks fast enough for every frame

MergeMode = Literal["overlay", "hist-match", "hist-match-bw", "seamless", "seamless-hist-match", "raw"]
RawLayer = Literal["rgb", "mask", "predicted"]
MaskMode = Literal["learned", "dst", "mesh-prd", "mesh-dst", "mesh-prd-dst", "learned-mesh-dst", "learned-dst",
                   "xseg-prd", "xseg-dst", "xseg-prd-dst", "learned-xseg-prd", "learned-xseg-dst",
                   "learned-xseg-prd-dst"]
SharpenMode = Literal["box", "gaussian"]   # merge --sharpen-mode: the low-pass of the unsharp mask / blur
# merge --super-resolution: the face-detail network (merge/superres.py) always, never, or "auto": once the model has
# trained long enough to have a face to sharpen (superres.AUTO_MIN_ITERATIONS)
SuperResolution = Literal["auto", "on", "off"]


def values(literal) -> tuple[str, ...]:
    """The allowed strings of a Literal type, in declaration order."""
    return tuple(get_args(literal))
