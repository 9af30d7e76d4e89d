"""One frozen dataclass per stage. Saved as JSON next to the stage's output; `--config FILE` re-uses one.

Each field carries its help text and allowed range in its metadata, so the CLI, the interactive
prompts and the browser UI all read the same option list. Construction validates every value.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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


@dataclasses.dataclass(frozen=True)
class SortConfig(StageConfig):
    by: C.SortMethod = option("blur", "Sort method")
    target: int = option(2000, "Faces kept by --by final", lo=1, hi=1_000_000)
    reference: Optional[str] = option(None, "Image of the person to put first (--by identity)", ask=False)
    trash_others: bool = option(False, "With --by identity and --reference: move other people to trash")


@dataclasses.dataclass(frozen=True)
class MergeConfig(StageConfig):
    mode: C.MergeMode = option("seamless", "Blend mode")
    raw: C.RawLayer = option("rgb", "Layer written by --mode raw")
    mask: C.MaskMode = option("learned", "Mask")
    suppress_seamless_jitter: bool = option(False, "Suppress seamless jitter (slower)")
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
