"""One frozen dataclass per stage. Saved as JSON next to the stage's output; `--config FILE` re-uses one.

Each field carries its help text and allowed range in its metadata, so the CLI, the interactive
prompts and the browser UI all read the same option list. Construction validates every value.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from pathlib import Path
from typing import Any, Optional, TypeVar

from . import choices as C
from .errors import InputError, OptionError

T = TypeVar("T", bound="StageConfig")


def option(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
           ask: bool = True, fixed: bool = False) -> Any:
    """A config field. `lo`/`hi` bound numbers; `ask` puts it in interactive prompts;
    `fixed` marks model options that cannot change once a model exists."""
    return dataclasses.field(default=default, metadata={"help": help, "lo": lo, "hi": hi, "ask": ask, "fixed": fixed})


def _literal_choices(tp: Any) -> tuple[str, ...] | None:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return tuple(typing.get_args(tp))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in typing.get_args(tp):
            found = _literal_choices(arg)
            if found:
                return found
    return None


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Base of every stage config: validation, JSON, overrides."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            allowed = _literal_choices(hints[f.name])
            flag = "--" + f.name.replace("_", "-")
            if allowed and value not in allowed:
                raise OptionError(f"{flag} must be one of {', '.join(allowed)}, not {value!r}.")
            lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise OptionError(f"{flag} must be between {lo:g} and {hi:g}, not {value:g}.")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise OptionError(f"Unknown option(s) {', '.join(unknown)} for {cls.__name__}; remove them from the config.")
        return cls(**data)

    def override(self: T, **given: Any) -> T:
        """A copy with every value that is not None replaced (None means 'not given on the command line')."""
        changes = {k: v for k, v in given.items() if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    # -- files ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        write_json_atomic(path, {"stage": type(self).__name__, "options": self.to_dict()})
        return path

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"Config file {path} does not exist; give the path of a saved config.") from None
        except (OSError, ValueError) as e:
            raise InputError(f"Config file {path} is not valid JSON ({e}); fix it or delete it.") from None
        options = data.get("options", data) if isinstance(data, dict) else None
        if not isinstance(options, dict):
            raise InputError(f"Config file {path} holds no options object; save one with the stage first.")
        return cls.from_dict(options)

    @classmethod
    def field_help(cls, name: str) -> str:
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        text = f.metadata.get("help", "")
        lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
        if lo is not None and hi is not None:
            text += f" [{lo:g}..{hi:g}]"
        return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and an atomic rename, so a kill never leaves half a file."""
    from .files import atomic_write_json

    atomic_write_json(path, data)


# ---------------------------------------------------------------------------------------------
# Stage configs. Defaults and ranges follow the original guide (SEED.md) unless said otherwise.
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class VideoExtractConfig(StageConfig):
    fps: Optional[float] = option(None, "Frames per second to extract (src only; empty = every frame)", lo=0.01, hi=240)
    format: C.ImageFormat = option("png", "Image format of the frames: png (lossless) or jpg (smaller)")
    jpeg_quality: int = option(95, "JPEG quality when --format jpg", lo=1, hi=100)


@dataclasses.dataclass(frozen=True)
class VideoCutConfig(StageConfig):
    start: str = option("00:00:00.000", "Start time HH:MM:SS.mmm")
    end: Optional[str] = option(None, "End time HH:MM:SS.mmm (empty = end of the video)")
    audio_track: int = option(0, "Audio track index to keep", lo=0, hi=64)
    bitrate: float = option(25.0, "Bitrate of the output in Mbit/s", lo=0.1, hi=1000)


@dataclasses.dataclass(frozen=True)
class DenoiseConfig(StageConfig):
    factor: int = option(5, "Denoise strength", lo=1, hi=20)


@dataclasses.dataclass(frozen=True)
class VideoBuildConfig(StageConfig):
    format: C.VideoFormat = option("mp4", "Output: mp4, avi, mp4-lossless, or mov-alpha (alpha from merged_mask/)")
    bitrate: float = option(16.0, "Bitrate in Mbit/s (mp4, avi)", lo=0.1, hi=1000)
    input_dir: Optional[str] = option(None, "Folder of frames to build from (default data_dst/merged)", ask=False)


@dataclasses.dataclass(frozen=True)
class ExtractConfig(StageConfig):
    detector: C.Detector = option("auto", "Face detector")
    face_type: C.FaceType = option("whole-face", "Face type: how much of the head the aligned image covers")
    size: int = option(512, "Size of the aligned face image in pixels", lo=64, hi=2048)
    jpeg_quality: int = option(95, "JPEG quality of the aligned faces", lo=1, hi=100)
    max_faces: int = option(0, "Most faces kept per frame (0 = all; dst keeps one target face)", lo=0, hi=100)
    debug: bool = option(False, "Write aligned_debug/ frames with box, landmarks and crop outline")
    reference: Optional[str] = option(None, "Image of the person to keep (identity); others are skipped", ask=False)
    rects: Optional[str] = option(None, "JSON file of face rectangles per frame for --detector manual", ask=False)
    device: str = option("auto", "Device: auto, cpu, cuda:N, mps", ask=False)
    workers: int = option(0, "Worker processes (0 = one per core)", lo=0, hi=256, ask=False)
    target: Optional[C.TargetPick] = option(None, "dst: which face to keep per frame: track (continue the previous "
                                                  "frame's face, else the largest), largest, or reference (nearest to "
                                                  "--reference); empty = reference with --reference, else track", ask=False)
    smooth: bool = option(True, "dst: smooth landmarks over time (One-Euro filter; reset on cuts)", ask=False)
    manual_fix: bool = option(False, "dst: list frames with no face and write them to data_dst/manual_fix.json for the UI")
    identity_every: int = option(5, "Compute the identity embedding every N frames of a face track (1 = every face; "
                                    "the others reuse the track's latest, ~80 ms saved per face)", lo=1, hi=1000, ask=False)
    detect_size: int = option(640, "Detect on a copy of the frame scaled to this longest side (0 = full size)",
                              lo=0, hi=8192, ask=False)


@dataclasses.dataclass(frozen=True)
class SortConfig(StageConfig):
    by: C.SortMethod = option("blur", "Sort method")
    target: int = option(2000, "Faces kept by --by final", lo=1, hi=1_000_000)
    reference: Optional[str] = option(None, "Image of the person to put first (--by identity)", ask=False)
    trash_others: bool = option(False, "With --by identity and --reference: move other people to trash")
    workers: int = option(0, "Worker processes measuring faces (0 = one per core)", lo=0, hi=256, ask=False)


@dataclasses.dataclass(frozen=True)
class MergeConfig(StageConfig):
    mode: C.MergeMode = option("seamless", "Blend mode")
    raw: C.RawLayer = option("rgb", "Layer written by --mode raw")
    mask: C.MaskMode = option("learned", "Mask")
    # default on, and smooth_frames 4: chosen with the quality report (benchmarks/merge_settings.py, a quick96
    # trained 5,800 iterations): flicker 1.75 -> 1.07 of dst's own, identity and detail unchanged
    suppress_seamless_jitter: bool = option(True, "Suppress seamless jitter (steadier colour at the face's edge)")
    masked_hist_match: bool = option(True, "Histogram-match inside the mask only")
    hist_threshold: int = option(255, "Histogram match threshold", lo=0, hi=255)
    erode: int = option(0, "Erode (+) or dilate (-) the mask, relative to face size", lo=-200, hi=200)
    blur: int = option(0, "Blur the mask edge, relative to face size", lo=-200, hi=200)
    face_scale: int = option(0, "Scale the output face by this percent", lo=-50, hi=50)
    color_transfer: C.ColorTransfer = option("none", "Colour transfer of the predicted face towards dst")
    super_resolution: bool = option(False, "Sharpen the predicted face with the face-detail network")
    degrade_color: int = option(0, "Degrade the colour of the final image", lo=0, hi=100)
    export_alpha: bool = option(False, "Write PNG with an alpha channel (only the face)")
    debug: bool = option(False, "Write predicted face, masks and before/after per frame")
    device: str = option("auto", "Device: auto, cpu, cuda:N, mps", ask=False)
    batch_size: int = option(8, "Faces per model batch", lo=1, hi=1024, ask=False)
    smooth_frames: int = option(4, "Smooth landmarks, mask and colour over this many neighbouring frames each side "
                                   "(0 = off; not in the original tool)", lo=0, hi=10)
    skin_mask: bool = option(False, "Also keep non-skin occluders (hair, glasses) out of the mask with a skin-colour model")
    model: Optional[str] = option(None, "Model folder (default: the workspace's model/)", ask=False)
    model_name: Optional[str] = option(None, "Model name inside the model folder when it holds several", ask=False)


@dataclasses.dataclass(frozen=True)
class TrainConfig(StageConfig):
    """Options of `facedouble train`. An empty value (None) means "the preset's value" on a model's first run
    and "the saved value" later. Architecture options (fixed) are set on the first run and refused afterwards;
    the training options can be changed on a later run with --override. Ranges follow the original guide."""

    model: C.ModelPreset = option("quick96", "Model preset: quick96 (CPU), h64, h128, df, liaef128, sae (every option)", ask=False)
    # -- architecture: fixed once the model exists --------------------------------------------------------
    resolution: Optional[int] = option(None, "Face resolution in pixels, a multiple of 16", lo=64, hi=512, fixed=True)
    face_type: Optional[C.FaceType] = option(None, "Face type the model learns: half, mid-full, full, whole-face, head", fixed=True)
    archi: Optional[C.Archi] = option(None, "Architecture: df (a decoder per person, most like src), liae (shared decoder, "
                                            "keeps dst's expression), vg (df with a deeper residual encoder)", fixed=True)
    ae_dims: Optional[int] = option(None, "Autoencoder dims: size of the code every face is packed into", lo=32, hi=1024, fixed=True)
    e_dims: Optional[int] = option(None, "Encoder dims per channel (x1, 2, 4, 8 over the four stages)", lo=8, hi=128, fixed=True)
    d_dims: Optional[int] = option(None, "Decoder dims per channel (x8, 4, 2 over the three stages)", lo=8, hi=128, fixed=True)
    d_mask_dims: Optional[int] = option(None, "Mask decoder dims per channel", lo=4, hi=128, fixed=True)
    learn_mask: Optional[bool] = option(None, "Learn the face mask (smoother, steadier mask in the merge)", fixed=True)
    residual_blocks: Optional[bool] = option(None, "Add residual blocks to the decoder (more detail, slower)", fixed=True)
    lightweight_encoder: Optional[bool] = option(None, "Lightweight encoder: depthwise-separable downscales (faster, "
                                                       "slightly less sharp)", fixed=True)
    multiscale_decoder: Optional[bool] = option(None, "Multiscale decoder: also learn the face at 1/4 and 1/2 resolution "
                                                      "(sharper sooner)", fixed=True)
    remove_gray_border: Optional[bool] = option(None, "Remove the gray border of the predicted face by also training a "
                                                      "band around the mask", fixed=True)
    # -- training: changeable with --override ----------------------------------------------------------------
    batch_size: Optional[int] = option(None, "Batch size: src and dst faces per iteration (bigger generalises better, "
                                             "needs more memory)", lo=1, hi=512)
    target_iteration: Optional[int] = option(None, "Stop at this iteration (0 = no target)", lo=0, hi=100_000_000)
    write_preview_history: Optional[bool] = option(None, "Keep a numbered copy of every preview in model/history/")
    uniform_yaw: Optional[bool] = option(None, "Feed src faces sorted by yaw to match each dst face's pose")
    random_flip: Optional[bool] = option(None, "Flip faces horizontally at random (needs src from both sides)")
    src_scale_mod: Optional[int] = option(None, "Src face scale modifier in percent (negative if src's face is wider than dst's)",
                                          lo=-30, hi=30)
    random_warp: Optional[bool] = option(None, "Random warp of the input faces (turn off late in training to sharpen)")
    pixel_loss: Optional[bool] = option(None, "Pixel loss instead of DSSIM (finer detail, less jitter; after ~20k iterations)")
    face_style_power: Optional[float] = option(None, "Face style power: learn dst's colour and lighting in the face", lo=0, hi=100)
    bg_style_power: Optional[float] = option(None, "Background style power: learn dst's face outline and surroundings", lo=0, hi=100)
    eyes_mouth_priority: Optional[bool] = option(None, "Eyes and mouth priority (sharper eyes and teeth)")
    color_transfer: Optional[C.TrainColorTransfer] = option(None, "Colour transfer of src faces towards dst: none, rct, lct")
    lr: Optional[float] = option(None, "Learning rate of Adam", lo=1e-7, hi=1e-2, ask=False)
    lr_dropout: Optional[bool] = option(None, "Learning-rate dropout: each weight update is kept with probability 0.7 "
                                              "(sharper late in training)")
    clip_grad: Optional[bool] = option(None, "Clip the gradient norm at 1 (guards against the loss exploding)")
    optimizer_mode: Optional[C.OptimizerMode] = option(None, "Optimizer mode: 1 normal, 2 recompute activations (about half "
                                                             "the memory, ~30% slower), 3 as 2 with the optimizer state on the CPU")
    gan_power: Optional[float] = option(None, "GAN power: a patch discriminator sharpens src faces (try 0.1 late in training)",
                                        lo=0, hi=10)
    true_face_power: Optional[float] = option(None, "True face power (df): a code discriminator makes the swap look more like "
                                                    "src (try 0.01)", lo=0, hi=1)
    seed: Optional[int] = option(None, "Random seed of a new model (sample order, augmentation, initial weights)",
                                 lo=0, hi=2**31 - 1, ask=False)
    # -- run settings: take effect on every run, never need --override --------------------------------------
    device: str = option("auto", "Device: auto, cpu, cuda:N, mps, or all (every GPU, under torchrun)", ask=False)
    amp: bool = option(True, "Mixed precision: bf16 on CPUs that have it, fp16/bf16 on GPUs", ask=False)
    channels_last: bool = option(True, "Channels-last memory layout for the convolutions", ask=False)
    workers: int = option(1, "Sample loader threads (0 = make batches in the training thread)", lo=0, hi=64, ask=False)
    threads: int = option(0, "Model threads (0 = automatic: all cores, or fewer while other programs compete for them; "
                             "give a number for bit-exact resumes)", lo=0, hi=1024, ask=False)
    autosave_minutes: float = option(15.0, "Save every N minutes (0 = only when stopping)", lo=0, hi=1440, ask=False)
    backup_hours: float = option(2.0, "Copy the model to model/backups/ every N hours (0 = never)", lo=0, hi=1000, ask=False)
    backups_kept: int = option(3, "How many backups to keep", lo=1, hi=1000, ask=False)
    preview_every: int = option(200, "Write the preview and loss plot every N iterations (0 = only when saving)",
                                lo=0, hi=1_000_000, ask=False)
    override_options: bool = option(False, "Change the training options of an existing model (architecture options stay fixed)",
                            ask=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resolution is not None and self.resolution % 16:
            raise OptionError(f"--resolution must be a multiple of 16 (64, 80, 96, ... 512), not {self.resolution}.")


@dataclasses.dataclass(frozen=True)
class ReportConfig(StageConfig):
    """Options of `facedouble report`: which frames are scored, the inputs when they are not the workspace's,
    and the quality targets (DESIGN.md section 4) the summary is judged against."""

    every: int = option(0, "Score every Nth frame (0 = auto: about --samples frames spread over the clip)",
                        lo=0, hi=1_000_000)
    samples: int = option(60, "With --every 0: about how many frames are scored (~0.5-1 s each on a loaded 2-core CPU)",
                          lo=1, hi=1_000_000, ask=False)
    src_faces: int = option(24, "src faces measured for the identity centroid and detail when no stored embeddings "
                                "exist (stored ones are all used)", lo=1, hi=100_000, ask=False)
    detector: C.Detector = option("auto", "Face detector for frames without aligned records (not manual)", ask=False)
    device: str = option("auto", "Device of the face detector: auto, cpu, cuda:N, mps", ask=False)
    result: Optional[str] = option(None, "Result video, image or folder of frames (default: WORKSPACE/result.mp4, "
                                         "else data_dst/merged)", ask=False)
    dst: Optional[str] = option(None, "dst video, image or folder of frames (default: data_dst frames, else data_dst.*)",
                                ask=False)
    src: tuple[str, ...] = option((), "src videos, images or folders (default: data_src/aligned, data_src frames, "
                                      "else data_src.*)", ask=False)
    out: Optional[str] = option(None, "Folder of report.html and report.json (default: WORKSPACE/report)", ask=False)
    worst: int = option(10, "How many of the worst frames the page shows", lo=0, hi=1000, ask=False)
    detail_target: float = option(0.7, "Target: face detail of the result / dst's, at least", lo=0, hi=100, ask=False)
    landmark_target: float = option(0.05, "Target: 68-landmark error / inter-ocular distance, at most", lo=0, hi=10,
                                    ask=False)
    flicker_target: float = option(1.10, "Target: flicker inside the face / dst's own, at most", lo=0, hi=100, ask=False)
    background_target: float = option(45.0, "Target: PSNR outside the face in dB, at least", lo=0, hi=200, ask=False)
    identity_target: float = option(0.9, "Target: share of faces nearer src than dst, at least", lo=0, hi=1, ask=False)

    def __post_init__(self) -> None:
        if isinstance(self.src, str):
            object.__setattr__(self, "src", (self.src,))
        elif not isinstance(self.src, tuple):
            object.__setattr__(self, "src", tuple(str(s) for s in self.src))
        super().__post_init__()
        if self.detector == "manual":
            raise OptionError("--detector manual cannot score frames (it needs rectangles); choose auto, mt, dlib, "
                              "dlib-cnn or mediapipe.")


@dataclasses.dataclass(frozen=True)
class RunConfig(StageConfig):
    """`facedouble run`: the whole pipeline. Each stage uses its saved config when the workspace has one
    (so a run repeats the last settings), else the defaults; the fields here override both."""
    src_fps: Optional[float] = option(None, "Frames per second taken from the src video (empty = every frame)", lo=0.01, hi=240)
    frame_format: C.ImageFormat = option("png", "Image format of extracted frames")
    detector: Optional[C.Detector] = option(None, "Face detector (empty = the saved or default one)")
    model: C.ModelPreset = option("quick96", "Model preset")
    train_iterations: Optional[int] = option(None, "Train to this iteration (empty = the model's target iteration)", lo=1, hi=100_000_000)
    train_minutes: Optional[float] = option(None, "Train at most this many minutes in this run", lo=0.1, hi=100_000)
    mode: Optional[C.MergeMode] = option(None, "Merge blend mode (empty = saved or default)")
    mask: Optional[C.MaskMode] = option(None, "Merge mask (empty = saved or default)")
    color_transfer: Optional[C.ColorTransfer] = option(None, "Merge colour transfer (empty = saved or default)")
    format: C.VideoFormat = option("mp4", "Result video format")
    device: str = option("auto", "Device: auto, cpu, cuda:N, mps", ask=False)
