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
from .errors import FaceDoubleError, InputError, OptionError

T = TypeVar("T", bound="StageConfig")


def option(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
           ask: bool = True, fixed: bool = False, group: str | None = None, unit: str = "",
           label: str | None = None, flags: str | tuple[str, ...] | None = None, panel: str | None = None,
           path: bool = False, cli: bool = True) -> Any:
    """A config field. `lo`/`hi` bound numbers; `ask` puts it in interactive prompts;
    `fixed` marks model options that cannot change once a model exists. For the UI's forms: `group` is the
    section a user looks for it in (default: "options", or "advanced" when not asked), `unit` is shown after
    the value, `label` replaces the field name where the name alone is cryptic.
    For the CLI (cli/options.py makes every field a flag of its stage's command): `flags` replaces the default
    spelling (`--name`, or `--name/--no-name` for a bool): e.g. ("--batch-size", "-b"), "--adabelief/--adam", or
    "--pretrain" (a bool with one flag: given = True); `panel` is the help panel it is listed in ("Options" =
    the command's own; default: the command's choice, "Architecture (first run)" for `fixed`); `path`: the value
    is a file or folder; `cli=False`: no flag (only the config file sets it)."""
    if isinstance(flags, str):
        flags = (flags,)
    return dataclasses.field(default=default, metadata={"help": help, "lo": lo, "hi": hi, "ask": ask, "fixed": fixed,
                                                        "group": group, "unit": unit, "label": label, "flags": flags,
                                                        "panel": panel, "path": path, "cli": cli})


def literal_choices(tp: Any) -> tuple[str, ...] | None:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return tuple(typing.get_args(tp))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in typing.get_args(tp):
            found = literal_choices(arg)
            if found:
                return found
    return None


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Base of every stage config: validation, JSON, overrides."""

    # Where a stage keeps these options in a workspace (`Workspace.config_file` answers the path): the file name,
    # and its folder: "root" (the workspace), "side" (data_<side>/) or "dst" (data_dst/). None: not saved there.
    FILE: typing.ClassVar[Optional[str]] = None
    PLACE: typing.ClassVar[str] = "root"

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            allowed = literal_choices(hints[f.name])
            flag = type(self).flag(f.name)
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
    def saved_in(cls: type[T], ws: Any, side: Optional[str] = None) -> Optional[T]:
        """The options this stage saved in workspace `ws` (`ws.config_file(cls, side)`), or None when there is no
        such file or it cannot be read as these options."""
        path = ws.config_file(cls, side)
        if not path.is_file():
            return None
        try:
            return cls.load(path)
        except FaceDoubleError:
            return None

    @classmethod
    def flag(cls, name: str) -> str:
        """The CLI flag of field `name` (its `flags` metadata's long form, else --name-with-dashes)."""
        flags = {f.name: f for f in dataclasses.fields(cls)}[name].metadata.get("flags")
        for decl in flags or ():
            if decl.startswith("--"):
                return decl.split("/")[0]
        return "--" + name.replace("_", "-")

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
    FILE = "video_extract.json"
    PLACE = "side"
    fps: Optional[float] = option(None, "Frames per second to extract (src only; empty = every frame)", lo=0.01, hi=240,
                                  unit="fps")
    format: C.ImageFormat = option("png", "Image format of the frames: png (lossless) or jpg (smaller)")
    jpeg_quality: int = option(95, "JPEG quality when --format jpg", lo=1, hi=100)


@dataclasses.dataclass(frozen=True)
class VideoCutConfig(StageConfig):
    start: str = option("00:00:00.000", "Start time HH:MM:SS.mmm", flags="--from")
    end: Optional[str] = option(None, "End time HH:MM:SS.mmm (empty = end of the video)", flags="--to")
    audio_track: int = option(0, "Audio track index to keep", lo=0, hi=64)
    bitrate: float = option(25.0, "Bitrate of the output in Mbit/s", lo=0.1, hi=1000, unit="Mbit/s")


@dataclasses.dataclass(frozen=True)
class DenoiseConfig(StageConfig):
    FILE = "video_denoise.json"
    PLACE = "side"
    factor: int = option(5, "Denoise strength", lo=1, hi=20)


@dataclasses.dataclass(frozen=True)
class VideoBuildConfig(StageConfig):
    FILE = "video_build.json"
    format: C.VideoFormat = option("mp4", "Output: mp4, avi, mp4-lossless, or mov-alpha (alpha from merged_mask/)")
    bitrate: float = option(16.0, "Bitrate in Mbit/s (mp4, avi)", lo=0.1, hi=1000, unit="Mbit/s")
    input_dir: Optional[str] = option(None, "Folder of frames to build from (default data_dst/merged)", ask=False,
                                      group="advanced", flags="--input", path=True)
    sign_cert: Optional[str] = option(None, "Certificate chain (PEM, leaf first) to sign the result with C2PA "
                                            "content credentials (default: the local facedouble certificate)",
                                      ask=False, group="advanced", label="signing certificate", path=True)
    sign_key: Optional[str] = option(None, "Private key (PEM) of --sign-cert", ask=False, group="advanced",
                                     label="signing key", path=True)


@dataclasses.dataclass(frozen=True)
class ExtractConfig(StageConfig):
    FILE = "extract.json"
    PLACE = "side"
    detector: C.Detector = option("auto", "Face detector", group="faces", flags=("--detector", "-d"))
    face_type: C.FaceType = option("whole-face", "Face type: how much of the head the aligned image covers",
                                   group="faces")
    size: int = option(512, "Size of the aligned face image in pixels", lo=64, hi=2048, group="faces", unit="px")
    jpeg_quality: int = option(95, "JPEG quality of the aligned faces", lo=1, hi=100, group="faces")
    max_faces: int = option(0, "Most faces kept per frame (0 = all; dst keeps one target face)", lo=0, hi=100,
                            group="faces", unit="faces")
    debug: bool = option(False, "Write aligned_debug/ frames with box, landmarks and crop outline", group="faces")
    reference: Optional[str] = option(None, "Image of the person to keep (identity); others are skipped", ask=False,
                                      group="which face", path=True)
    rects: Optional[str] = option(None, "JSON file of face rectangles per frame for --detector manual", ask=False,
                                  group="advanced", path=True)
    device: str = option("auto", "Device: auto, cpu, cuda:N, mps", ask=False, group="advanced")
    workers: int = option(0, "Worker processes (0 = one per core)", lo=0, hi=256, ask=False,
                          group="advanced", unit="processes")
    target: Optional[C.TargetPick] = option(None, "dst: which face to keep per frame: track (continue the previous "
                                                  "frame's face, else the largest), largest, or reference (nearest to "
                                                  "--reference); empty = reference with --reference, else track", ask=False,
                                                  group="which face")
    smooth: bool = option(True, "dst: smooth landmarks over time (One-Euro filter; reset on cuts)", ask=False,
                          group="which face")
    manual_fix: bool = option(False, "dst: list frames with no face and write them to data_dst/manual_fix.json for the UI",
                              group="faces")
    hands: Optional[bool] = option(None, "Track hands held over the faces (frames in order) and keep them in the "
                                         "face records, so training leaves them out of the face mask; empty = "
                                         "src only (about 40 ms per frame)", ask=False, group="faces",
                                   flags="--hands/--no-hands")
    identity_every: int = option(5, "Compute the identity embedding every N frames of a face track (1 = every face; "
                                    "the others reuse the track's latest, ~80 ms saved per face)", lo=1, hi=1000, ask=False,
                                    group="advanced", unit="frames")
    detect_size: int = option(640, "Detect on a copy of the frame scaled to this longest side (0 = full size)",
                              lo=0, hi=8192, ask=False, group="advanced", unit="px")


@dataclasses.dataclass(frozen=True)
class SortConfig(StageConfig):
    by: C.SortMethod = option("blur", "Sort method", flags=("--by", "-b"))
    target: int = option(2000, "Faces kept by --by final", lo=1, hi=1_000_000, unit="faces", flags=("--target", "-n"))
    reference: Optional[str] = option(None, "Image of the person to put first (--by identity)", ask=False, path=True)
    trash_others: bool = option(False, "With --by identity and --reference: move other people to trash", flags="--trash-others/--keep-others")
    workers: int = option(0, "Worker processes measuring faces (0 = one per core)", lo=0, hi=256, ask=False,
                          unit="processes")


# -- per-frame merge settings (the original interactive merger's) -----------------------------------------------

# The MergeConfig options a frame range may change. Every other option is the whole run's (its reason below, or
# the default one); a range that sets one is refused, so a new option is per-run until it is added here.
MERGE_FRAME_OPTIONS: tuple[str, ...] = (
    "mode", "raw", "mask", "skin_mask", "erode", "blur", "face_scale", "color_transfer", "masked_hist_match",
    "hist_threshold", "degrade_color", "sharpen", "sharpen_mode", "denoise", "bicubic_degrade", "motion_blur", "debug")
_RUN_REASONS = {
    "smooth_frames": "it smooths each frame with its neighbours over the whole video",
    "suppress_seamless_jitter": "it steadies each frame's blend with its neighbours over the whole video",
    "super_resolution": "the face-detail network is loaded (or learned) once for the run",
    "smooth_codes": "it averages each face's code in the model with its neighbours' over the whole video",
    "export_alpha": "it sets the file format of every merged frame",
    "sign_cert": "the content credentials are the run's", "sign_key": "the content credentials are the run's",
}
_RUN_REASON_DEFAULT = "the model and the run are set up once for the whole video"


def merge_run_reason(name: str) -> str:
    """Why MergeConfig option `name` cannot change per frame (for the refusal and the UI)."""
    return _RUN_REASONS.get(name, _RUN_REASON_DEFAULT)


@dataclasses.dataclass(frozen=True)
class FrameRange:
    """Merge options for the dst frames `start`..`end` (their file names' numbers; `end` None = to the last
    frame): `options` are (name, value) pairs of MERGE_FRAME_OPTIONS that replace the config's own there.
    As JSON: {"start": N, "end": M or null, "options": {name: value, ...}}."""

    start: int
    end: Optional[int]
    options: tuple[tuple[str, Any], ...] = ()

    def covers(self, number: int) -> bool:
        return self.start <= number and (self.end is None or number <= self.end)

    def overrides(self) -> dict[str, Any]:
        return dict(self.options)

    def label(self) -> str:
        if self.end is None:
            return f"frames {self.start} to the last"
        return f"frame {self.start}" if self.end == self.start else f"frames {self.start}-{self.end}"

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "options": dict(self.options)}


def _frame_number(value: Any, what: str, *, empty: bool = False) -> Optional[int]:
    if value is None and empty:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"The merge config's {what} must be a frame number (1 or more{', or null' if empty else ''}), "
                          f"not {value!r}; fix the range in the config.")
    return value


def _range_value(name: str, value: Any, hint: Any, where: str) -> Any:
    """A range's option value checked against the field's type (JSON gives any type; the dataclass checks ranges
    and choices afterwards)."""
    flag = "--" + name.replace("_", "-")
    base = hint
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = args[0] if len(args) == 1 else hint
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:  # a Literal of strings, or str
        ok = isinstance(value, str)
    if not ok:
        kind = {bool: "true or false", int: "whole number", float: "number", str: "text"}.get(base, "choice")
        raise OptionError(f"{where}: {flag} must be a {kind}, not {value!r}; fix the range in the merge config.")
    return value


def parse_frame_ranges(cfg: "MergeConfig", raw: Any) -> tuple[FrameRange, ...]:
    """`raw` (FrameRange objects or their JSON dicts) checked against `cfg`'s field metadata and sorted: one clear
    sentence (OptionError) for a malformed entry, an unknown or per-run option, a bad value, an inverted range
    or two ranges that overlap."""
    if raw is None:
        return ()
    if isinstance(raw, (str, bytes, dict)) or not isinstance(raw, (list, tuple)):
        raise OptionError('The merge config\'s "ranges" must be a list of {"start": N, "end": M or null, "options": '
                          '{...}}; fix it in the config.')
    hints = typing.get_type_hints(MergeConfig)
    names = {f.name for f in dataclasses.fields(MergeConfig)}
    base = dataclasses.replace(cfg, ranges=()) if cfg.ranges else cfg
    out = []
    for k, item in enumerate(raw, start=1):
        if isinstance(item, FrameRange):
            item = item.to_dict()
        if not isinstance(item, dict) or "start" not in item or not set(item) <= {"start", "end", "options"}:
            raise OptionError(f'Entry {k} of the merge config\'s ranges must be {{"start": N, "end": M or null, '
                              f'"options": {{...}}}}, not {item!r}; fix it in the config.')
        start = _frame_number(item["start"], f"range {k} start")
        end = _frame_number(item.get("end"), f"range {k} end", empty=True)
        probe = FrameRange(start, end)
        if end is not None and end < start:
            raise OptionError(f"The merge config's range {start}-{end} ends before it starts; give the end frame "
                              "after the start frame (or null for the last frame).")
        options = item.get("options") or {}
        if not isinstance(options, dict):
            raise OptionError(f"The options of the merge config's {probe.label()} must be an object of option names "
                              f"and values, not {options!r}.")
        where = f"The merge config's {probe.label()}"
        values = {}
        for name, value in options.items():
            flag = "--" + str(name).replace("_", "-")
            if name not in names:
                raise OptionError(f"{where} sets an unknown option {name!r}; remove it or use one of "
                                  f"{', '.join(MERGE_FRAME_OPTIONS)}.")
            if name not in MERGE_FRAME_OPTIONS:
                raise OptionError(f"{where} sets {flag}, which cannot change per frame ({merge_run_reason(name)}); set "
                                  "it for all frames instead.")
            values[name] = _range_value(name, value, hints[name], where)
        try:
            dataclasses.replace(base, **values)  # the fields' own checks: ranges and choices
        except OptionError as e:
            raise OptionError(f"{where}: {e.message}") from None
        out.append(FrameRange(start, end, tuple(sorted(values.items()))))
    out.sort(key=lambda r: r.start)
    for a, b in zip(out, out[1:]):
        if a.end is None or a.end >= b.start:
            raise OptionError(f"The merge config's {a.label()} and {b.label()} overlap; give each frame at most one "
                              "range.")
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class MergeConfig(StageConfig):
    FILE = "merge_config.json"
    PLACE = "dst"
    mode: C.MergeMode = option("seamless", "Blend mode", group="blend")
    raw: C.RawLayer = option("rgb", "Layer written by --mode raw", group="blend")
    mask: C.MaskMode = option("learned", "Mask", group="mask")
    # default on, and smooth_frames 4: chosen with the quality report (benchmarks/merge_settings.py, a quick96
    # trained 5,800 iterations): flicker 1.75 -> 1.07 of dst's own, identity and detail unchanged
    suppress_seamless_jitter: bool = option(True, "Suppress seamless jitter (steadier colour at the face's edge)",
                                            group="blend")
    masked_hist_match: bool = option(True, "Histogram-match inside the mask only", group="colour")
    hist_threshold: int = option(255, "Histogram match threshold", lo=0, hi=255, group="colour", unit="levels")
    erode: int = option(0, "Erode (+) or dilate (-) the mask, relative to face size", lo=-200, hi=200, group="mask")
    blur: int = option(0, "Blur the mask edge, relative to face size", lo=-200, hi=200, group="mask")
    face_scale: int = option(0, "Scale the output face by this percent", lo=-50, hi=50, group="mask", unit="%")
    color_transfer: C.ColorTransfer = option("none", "Colour transfer of the predicted face towards dst",
                                             group="colour")
    # auto: measured on liae192 (docs/quality.md, sessions 15-20): the network trained on the model's own
    # reconstructions of her faces lifts the merged face's detail 0.31 -> 1.81 after a CPU-hour (texture power 1)
    # and 0.20-0.35 -> 0.35-0.64 after ten minutes (a young model's power, 0.3); auto waits for a model of 500
    # iterations (superres.AUTO_MIN_ITERATIONS), which has a face to sharpen
    super_resolution: C.SuperResolution = option(
        "auto", "Sharpen the predicted face with a face-detail network learned from the src faces: on, off, or auto "
                "(on once the model has trained long enough to gain from it)", group="output")
    degrade_color: int = option(0, "Degrade the colour of the final image", lo=0, hi=100, group="colour", unit="%")
    # detail of the predicted face (merge/adjust.py), applied in face space after colour matching, before the blend
    sharpen: int = option(0, "Sharpen (+, an unsharp mask) or blur (-) the predicted face", lo=-100, hi=100,
                          group="face detail", label="sharpen / blur")
    sharpen_mode: C.SharpenMode = option("gaussian", "Kernel of --sharpen: gaussian (smooth) or box (coarser, more "
                                                     "ringing)", group="face detail")
    denoise: int = option(0, "Denoise the predicted face, keeping its edges (bilateral passes: 100 = one pass)",
                          lo=0, hi=500, group="face detail")
    bicubic_degrade: int = option(0, "Soften the predicted face to match a soft dst (downscale up to 8x and back)",
                                  lo=0, hi=100, group="face detail")
    motion_blur: int = option(0, "Blur the face along its movement between neighbouring dst frames (100 = one frame's "
                                 "travel)", lo=0, hi=100, group="face detail", unit="%")
    export_alpha: bool = option(False, "Write PNG with an alpha channel (only the face)", group="output")
    debug: bool = option(False, "Write predicted face, masks and before/after per frame", group="output")
    device: str = option("auto", "Device: auto, cpu, cuda:N, mps", ask=False, group="advanced")
    batch_size: int = option(8, "Faces per model batch", lo=1, hi=1024, ask=False, group="advanced", unit="faces")
    smooth_frames: int = option(4, "Smooth landmarks, mask and colour over this many neighbouring frames each side "
                                   "(0 = off; not in the original tool)", lo=0, hi=10, group="blend", unit="frames")
    # default 5 (frames each side, weights 1-2-...-6-...-2-1): measured with the quality report (docs/quality.md).
    # Session 16 chose 3 on three liae192 hours (flicker 1.05-1.17 -> 0.97-1.06 from 0 to 3). On a faster CPU the
    # hours reach more iterations and more detail, and 3 left both clips' hour over the 1.10 target (1.127, 1.147);
    # session 33, the same models merged again with 3 / 4 / 5 / 6: flicker 1.127 / 1.078 / 1.052 / 1.035 (sample pair)
    # and 1.147 / 1.095 / 1.078 / 1.046 (second clip), identity, detail, landmarks and eyes kept; 5 is the least that
    # passes on both with room; it also steadied lean96's hour (1.079 -> 1.006) and the ten minutes (0.987 -> 0.918)
    smooth_codes: int = option(5, "Average each face's code in the model over this many neighbouring frames each side, "
                                  "for a steadier face (0 = off; whole-video merges only, not the one-frame preview; "
                                  "not in the original tool)", lo=0, hi=8, group="blend", unit="frames",
                               label="steady the face over")
    skin_mask: bool = option(False, "Also keep non-skin occluders (hair, glasses) out of the mask with a skin-colour model",
                             group="mask")
    model: Optional[str] = option(None, "Model folder (default: the workspace's model/)", ask=False, group="advanced", path=True)
    model_name: Optional[str] = option(None, "Model name inside the model folder when it holds several", ask=False,
                                       group="advanced")
    model_file: Optional[str] = option(None, "A DFM model file (.dfm) to use instead of a trained model folder",
                                       ask=False, group="advanced", path=True)
    morph_factor: Optional[float] = option(None, "Morph factor of morphable models (amp, morphable DFM files): 0 = "
                                                 "dst's own face, 1 = the full swap (empty = 1 for an amp model, "
                                                 "0.75 for a DFM file)", lo=0, hi=1, group="blend",
                                           label="morph factor")
    sign_cert: Optional[str] = option(None, "Certificate chain (PEM, leaf first) to sign the merged images with C2PA "
                                            "content credentials (default: the local facedouble certificate)",
                                      ask=False, group="output", label="signing certificate", path=True)
    sign_key: Optional[str] = option(None, "Private key (PEM) of --sign-cert", ask=False, group="output",
                                     label="signing key", path=True)
    # per-frame settings: options of MERGE_FRAME_OPTIONS that differ on some frames (the UI's "apply to this frame")
    ranges: tuple[FrameRange, ...] = option((), "Frame ranges with their own options: a list of {start, end, options} "
                                                "in the config file (the merge tuner writes them)", ask=False,
                                            group="frames", cli=False)

    def __post_init__(self) -> None:
        if isinstance(self.super_resolution, bool):  # the option was a bool: True / False from code and JSON values
            object.__setattr__(self, "super_resolution", "on" if self.super_resolution else "off")
        super().__post_init__()
        object.__setattr__(self, "ranges", parse_frame_ranges(self, self.ranges))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MergeConfig":
        # configs saved before "auto" hold the old default `false` for every merge that did not ask for super
        # resolution: read it as not asked for (auto), and `true` as on
        if isinstance(data.get("super_resolution"), bool):
            data = {**data, "super_resolution": "on" if data["super_resolution"] else "auto"}
        return super().from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "ranges": [r.to_dict() for r in self.ranges]}

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MergeConfig":
        try:
            return super().load(path)
        except OptionError as e:  # say which file holds the bad option or range
            raise OptionError(f"In {path}: {e.message}") from None

    def frame_range(self, number: int) -> Optional[FrameRange]:
        """The range that covers dst frame `number` (its file name's number), None when the frame has the
        config's own options."""
        for r in self.ranges:
            if r.covers(number):
                return r
        return None

    def for_frame(self, number: int) -> "MergeConfig":
        """The effective options of dst frame `number`: these options with the overrides of the range that covers
        it, as a config without ranges (what the merge of that one frame uses)."""
        r = self.frame_range(number)
        return dataclasses.replace(self, ranges=(), **(r.overrides() if r is not None else {}))


@dataclasses.dataclass(frozen=True)
class TrainConfig(StageConfig):
    """Options of `facedouble train`. An empty value (None) means "the preset's value" on a model's first run
    and "the saved value" later. Architecture options (fixed) are set on the first run and refused afterwards;
    the training options can be changed on a later run with --override. Ranges follow the original guide."""

    model: C.ModelPreset = option(C.DEFAULT_MODEL, "Model preset (without it: the workspace's newest model, else the default): liae192 (the default: 192 px LIAE, follows dst's eyes), cpu192 (liae192's shape with a decoder per person), quick96 (the original's), lean96 (fast CPU), h64, h128, df, liaef128, amp (morphable), sae (every option)", ask=False,
                                  group="model shape", flags=("--model", "-m"), panel="Options")
    # -- architecture: fixed once the model exists --------------------------------------------------------
    resolution: Optional[int] = option(None, "Face resolution in pixels, a multiple of 16", lo=64, hi=512, fixed=True,
                                       group="model shape", unit="px")
    face_type: Optional[C.FaceType] = option(None, "Face type the model learns: half, mid-full, full, whole-face, head", fixed=True,
                                             group="model shape")
    archi: Optional[C.Archi] = option(None, "Architecture: df (a decoder per person, most like src), liae (shared decoder, "
                                            "keeps dst's expression), vg (df with a deeper residual encoder), amp (shared decoder, an inter per person: "
                                            "the swap can be morphed between dst and src at merge time)", fixed=True,
                                            group="model shape")
    ae_dims: Optional[int] = option(None, "Autoencoder dims: size of the code every face is packed into", lo=32, hi=1024, fixed=True,
                                    group="model shape", unit="dims")
    e_dims: Optional[int] = option(None, "Encoder dims per channel (x1, 2, 4, 8 over the four stages)", lo=8, hi=128, fixed=True,
                                   group="model shape", unit="dims")
    d_dims: Optional[int] = option(None, "Decoder dims per channel (x8, 4, 2 over the three stages)", lo=8, hi=128, fixed=True,
                                   group="model shape", unit="dims")
    d_mask_dims: Optional[int] = option(None, "Mask decoder dims per channel", lo=4, hi=128, fixed=True,
                                        group="model shape", unit="dims")
    learn_mask: Optional[bool] = option(None, "Learn the face mask (smoother, steadier mask in the merge)", fixed=True,
                                        group="model shape")
    residual_blocks: Optional[bool] = option(None, "Add residual blocks to the decoder (more detail, slower)", fixed=True,
                                             group="model shape")
    lightweight_encoder: Optional[bool] = option(None, "Lightweight encoder: depthwise-separable downscales (faster, "
                                                       "slightly less sharp)", fixed=True, group="model shape")
    multiscale_decoder: Optional[bool] = option(None, "Multiscale decoder: also learn the face at 1/4 and 1/2 resolution "
                                                      "(sharper sooner)", fixed=True, group="model shape")
    remove_gray_border: Optional[bool] = option(None, "Remove the gray border of the predicted face by also training a "
                                                      "band around the mask", fixed=True, group="model shape", flags="--remove-gray-border/--keep-gray-border")
    double_resolution: Optional[bool] = option(None, "Double resolution: the decoder works at half the face resolution "
                                                     "and predicts 2x2 pixels per position (the original's 'd' "
                                                     "architecture: a face twice the side for about the same work)",
                                               fixed=True, group="model shape")
    # -- training: changeable with --override ----------------------------------------------------------------
    batch_size: Optional[int] = option(None, "Batch size: src and dst faces per iteration (bigger generalises better, "
                                             "needs more memory)", lo=1, hi=512, group="training", unit="faces", flags=("--batch-size", "-b"))
    target_iteration: Optional[int] = option(None, "Stop at this iteration (0 = no target)", lo=0, hi=100_000_000,
                                             group="training", unit="iterations")
    write_preview_history: Optional[bool] = option(None, "Keep a numbered copy of every preview in model/history/",
                                                   group="training", flags="--preview-history/--no-preview-history")
    uniform_yaw: Optional[bool] = option(None, "Feed src faces sorted by yaw to match each dst face's pose",
                                         group="augmentation")
    random_flip: Optional[bool] = option(None, "Flip faces horizontally at random (needs src from both sides)",
                                         group="augmentation")
    src_scale_mod: Optional[int] = option(None, "Src face scale modifier in percent (negative if src's face is wider than dst's)",
                                          lo=-30, hi=30, group="augmentation", unit="%", label="src scale")
    random_warp: Optional[bool] = option(None, "Random warp of the input faces, from the warp-from iteration on (turn "
                                               "off late in training to sharpen)", group="augmentation")
    warp_from: Optional[int] = option(None, "Warp from: random warp starts at this iteration; before it the model "
                                            "learns the faces as they are, which brings a young model nearer src "
                                            "sooner (0 = warp from the start)", lo=0, hi=1_000_000,
                                      unit="iterations", group="augmentation", label="warp from")
    pixel_loss: Optional[bool] = option(None, "Pixel loss instead of DSSIM (finer detail, less jitter; after ~20k iterations)",
                                        group="losses")
    multiscale_dssim: Optional[bool] = option(None, "Multi-scale DSSIM: the structure loss at three window sizes "
                                                    "(1/11.6, 1/23.2 and 1/46.4 of the face) instead of one",
                                              group="losses", label="multi-scale DSSIM")
    face_style_power: Optional[float] = option(None, "Face style power: learn dst's colour and lighting in the face", lo=0, hi=100,
                                               group="losses")
    bg_style_power: Optional[float] = option(None, "Background style power: learn dst's face outline and surroundings", lo=0, hi=100,
                                             group="losses", label="background style power")
    blur_out_mask: Optional[bool] = option(None, "Blur training faces outside their mask (XSeg labels or applied "
                                                 "XSeg mask, else the landmark hull): less background to learn",
                                           group="augmentation", label="blur out mask")
    mask_hands: Optional[bool] = option(None, "Leave the hands tracked over a face at extraction out of its training "
                                              "mask (a hand over the mouth is not learned as part of the face; on "
                                              "src the learned mask still covers the face under the hand)",
                                        group="augmentation", label="mask hands")
    eyes_mouth_priority: Optional[bool] = option(None, "Eyes and mouth priority (sharper eyes and teeth)",
                                                 group="losses")
    detail_power: Optional[float] = option(None, "Detail power: ask for the fine edges of eyes, brows, lips and nostrils "
                                                 "directly (an L1 on the 1-4 px detail bands; 0 = off)", lo=0, hi=100,
                                           group="losses")
    texture_power: Optional[float] = option(None, "Texture power: ask for as much fine detail around each point of the face "
                                                  "as the real face has there, wherever its edges lie (sharpens what the "
                                                  "model draws; 20 by default, 0 = off)", lo=0, hi=100, group="losses")
    texture_ramp: Optional[int] = option(None, "Texture ramp: the texture power grows from 0 to its value over the model's "
                                               "first N iterations (a young model answers the full power with a striped "
                                               "pattern; 0 = full power from the start)", lo=0, hi=1_000_000,
                                         unit="iterations", group="losses", label="texture ramp")
    grain_power: Optional[float] = option(None, "Grain power: keep the fine detail the model draws from running in one "
                                                "direction more than the real face's does there (lines across the skin "
                                                "where her skin has none); grows with the texture ramp; 0 = off",
                                          lo=0, hi=100, group="losses", label="grain power")
    color_transfer: Optional[C.TrainColorTransfer] = option(None, "Colour transfer of src faces towards dst (the merge's "
                                                                  "transfers): none, rct, lct, mkl, idt, sot",
                                                            group="augmentation")
    random_hsv_power: Optional[float] = option(None, "Random HSV power: shift the hue, saturation and value of src faces "
                                                     "at random by up to this much (0.05 = slight; helps when src's "
                                                     "lighting varies little)", lo=0, hi=0.3, group="augmentation",
                                               label="random HSV power")
    lr: Optional[float] = option(None, "Learning rate (Adam's; AdaBelief steps at a third of it)", lo=1e-7, hi=1e-2, ask=False,
                                 group="training", label="learning rate")
    adabelief: Optional[bool] = option(None, "AdaBelief optimizer instead of Adam (the original's later default)",
                                       group="training", label="AdaBelief", flags="--adabelief/--adam")
    ema_decay: Optional[float] = option(None, "Weight averaging: the merge, the preview and exports use an exponential "
                                              "moving average of the weights over about the last tenth of the "
                                              "iterations, up to 1/(1-decay) of them (0 = off)",
                                        lo=0, hi=0.9999, group="training", label="weight averaging (EMA decay)")
    lr_dropout: Optional[bool] = option(None, "Learning-rate dropout: each weight update is kept with probability 0.7 "
                                              "(sharper late in training)",
                                              group="training", label="learning-rate dropout")
    clip_grad: Optional[bool] = option(None, "Clip the gradient norm at 1 (guards against the loss exploding)",
                                       group="training", label="clip gradient")
    optimizer_mode: Optional[C.OptimizerMode] = option(None, "Optimizer mode: 1 normal, 2 recompute activations (about half "
                                                             "the memory, ~30% slower), 3 as 2 with the optimizer state on the CPU",
                                                             group="training")
    gan_power: Optional[float] = option(None, "GAN power: a patch discriminator sharpens src faces (try 0.1 late in training)",
                                        lo=0, hi=10, group="losses", label="GAN power")
    gan_patch_size: Optional[int] = option(None, "GAN patch size: the side of the face patch each critic output judges "
                                                 "(0 = about a seventh of the face; the original suggests resolution / 8)",
                                           lo=0, hi=640, group="losses", unit="px", label="GAN patch size")
    gan_dims: Optional[int] = option(None, "GAN dims: channels of the critic's first layer (more = a stronger critic, "
                                           "slower)", lo=4, hi=512, group="losses", unit="dims", label="GAN dims")
    true_face_power: Optional[float] = option(None, "True face power (df): a code discriminator makes the swap look more like "
                                                    "src (try 0.01)", lo=0, hi=1, group="losses")
    seed: Optional[int] = option(None, "Random seed of a new model (sample order, augmentation, initial weights)",
                                 lo=0, hi=2**31 - 1, ask=False, group="advanced")
    # -- run settings: take effect on every run, never need --override --------------------------------------
    device: str = option("auto", "Device: auto, cpu, cuda:N, mps, or all (every GPU, under torchrun)", ask=False,
                         group="advanced", panel="Run")
    amp: bool = option(True, "Mixed precision: bf16 on CPUs that have it, fp16/bf16 on GPUs", ask=False,
                       group="advanced", panel="Run")
    channels_last: bool = option(True, "Channels-last memory layout for the convolutions", ask=False, group="advanced", panel="Run")
    workers: int = option(1, "Sample loader threads (0 = make batches in the training thread)", lo=0, hi=64, ask=False,
                          group="advanced", unit="threads", panel="Run")
    threads: int = option(0, "Model threads (0 = automatic: all cores, or fewer while other programs compete for them; "
                             "give a number for bit-exact resumes)", lo=0, hi=1024, ask=False,
                             group="advanced", unit="threads", panel="Run")
    autosave_minutes: float = option(15.0, "Save every N minutes (0 = only when stopping)", lo=0, hi=1440, ask=False,
                                     group="advanced", unit="min", label="autosave every", panel="Run")
    backup_hours: float = option(2.0, "Copy the model to model/backups/ every N hours (0 = never)", lo=0, hi=1000, ask=False,
                                 group="advanced", unit="h", label="backup every", panel="Run")
    backups_kept: int = option(3, "How many backups to keep", lo=1, hi=1000, ask=False,
                               group="advanced", unit="backups", panel="Run")
    preview_every: int = option(200, "Write the preview and loss plot every N iterations (0 = only when saving)",
                                lo=0, hi=1_000_000, ask=False, group="advanced", unit="iterations", panel="Run")
    override_options: bool = option(False, "Ask the training options of an existing model again (-i); options given "
                                           "always apply, architecture options stay fixed",
                            ask=False, group="advanced", flags="--override", panel="Options")
    pretrain: bool = option(False, "Pretrain: learn a generic face from --faceset (any people, no src/dst pair); start "
                                   "pairs from the result with --from", ask=False, group="advanced", flags="--pretrain", panel="Run")
    faceset: Optional[str] = option(None, "Folder of aligned faces to pretrain on (with --pretrain)", ask=False,
                                    group="advanced", path=True, panel="Run")
    from_model: Optional[str] = option(None, "Start a new model from the weights of this model folder (a pretrained "
                                             "or earlier model of the same architecture)", ask=False, group="advanced", flags="--from", path=True, panel="Run")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resolution is not None and self.resolution % 16:
            raise OptionError(f"--resolution must be a multiple of 16 (64, 80, 96, ... 512), not {self.resolution}.")


@dataclasses.dataclass(frozen=True)
class ReportConfig(StageConfig):
    """Options of `facedouble report`: which frames are scored, the inputs when they are not the workspace's,
    and the quality targets (DESIGN.md section 4) the summary is judged against."""

    every: int = option(0, "Score every Nth frame (0 = auto: about --samples frames spread over the clip)",
                        lo=0, hi=1_000_000, group="sampling", unit="frames", label="score every", flags=("--every", "-n"))
    samples: int = option(60, "With --every 0: about how many frames are scored (~0.5-1 s each on a loaded 2-core CPU)",
                          lo=1, hi=1_000_000, ask=False, group="sampling", unit="frames")
    src_faces: int = option(24, "src faces measured for the identity centroid and detail when no stored embeddings "
                                "exist (stored ones are all used)", lo=1, hi=100_000, ask=False,
                                group="sampling", unit="faces")
    detector: C.Detector = option("auto", "Face detector for frames without aligned records (not manual)", ask=False,
                                  group="advanced")
    device: str = option("auto", "Device of the face detector: auto, cpu, cuda:N, mps", ask=False, group="advanced")
    result: Optional[str] = option(None, "Result video, image or folder of frames (default: WORKSPACE/result.mp4, "
                                         "else data_dst/merged)", ask=False, group="inputs", path=True)
    dst: Optional[str] = option(None, "dst video, image or folder of frames (default: data_dst frames, else data_dst.*)",
                                ask=False, group="inputs", path=True)
    src: tuple[str, ...] = option((), "src videos, images or folders (default: data_src/aligned, data_src frames, "
                                      "else data_src.*)", ask=False, group="inputs", path=True)
    out: Optional[str] = option(None, "Folder of report.html and report.json (default: WORKSPACE/report)", ask=False,
                                group="inputs", flags=("--out", "-o"), path=True)
    worst: int = option(10, "How many of the worst frames the page shows", lo=0, hi=1000, ask=False,
                        group="sampling", unit="frames", label="worst frames shown")
    detail_target: float = option(0.7, "Target: face detail of the result / dst's, at least", lo=0, hi=100, ask=False,
                                  group="targets", unit="x dst")
    landmark_target: float = option(0.05, "Target: 68-landmark error / inter-ocular distance, at most", lo=0, hi=10,
                                    ask=False, group="targets", unit="x eye distance")
    flicker_target: float = option(1.10, "Target: flicker inside the face / dst's own, at most", lo=0, hi=100, ask=False,
                                   group="targets", unit="x dst")
    background_target: float = option(45.0, "Target: PSNR outside the face in dB, at least", lo=0, hi=200, ask=False,
                                      group="targets", unit="dB")
    identity_target: float = option(0.9, "Target: share of faces nearer src than dst, at least", lo=0, hi=1, ask=False,
                                    group="targets", unit="share")

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
    FILE = "run.json"
    src_fps: Optional[float] = option(None, "Frames per second taken from the src video (empty = every frame)", lo=0.01, hi=240,
                                      unit="fps")
    frame_format: C.ImageFormat = option("png", "Image format of extracted frames")
    detector: Optional[C.Detector] = option(None, "Face detector (empty = the saved or default one)")
    model: Optional[C.ModelPreset] = option(None, f"Model preset (empty = the workspace's newest model, else {C.DEFAULT_MODEL})")
    train_iterations: Optional[int] = option(None, "Train to this iteration (empty = the model's target iteration)", lo=1, hi=100_000_000,
                                             unit="iterations")
    train_minutes: Optional[float] = option(None, "Train at most this many minutes in this run", lo=0.1, hi=100_000,
                                            unit="min")
    mode: Optional[C.MergeMode] = option(None, "Merge blend mode (empty = saved or default)")
    mask: Optional[C.MaskMode] = option(None, "Merge mask (empty = saved or default)")
    color_transfer: Optional[C.ColorTransfer] = option(None, "Merge colour transfer (empty = saved or default)")
    format: C.VideoFormat = option("mp4", "Result video format")
    device: str = option("auto", "Device: auto, cpu, cuda:N, mps", ask=False)


@dataclasses.dataclass(frozen=True)
class XSegTrainConfig(StageConfig):
    """`facedouble xseg train`: the mask network, learned from the labelled faces of both sides."""
    # 1200: benchmarks/xseg.py (16 labelled faces of the sample clip): held-back IoU 0.893 at 600, 0.912 at 1200
    target_iteration: int = option(1200, "Train XSeg to this iteration (a later run with a higher one continues)",
                                   lo=1, hi=10_000_000, unit="iterations", flags=("--target-iteration", "-n"))
    batch_size: int = option(8, "Faces per training step", lo=1, hi=256, unit="faces")
    resolution: int = option(128, "Network input side (fixed once the XSeg model exists)", lo=64, hi=256, fixed=True,
                             ask=False, unit="px")
    pretrain_iterations: int = option(200, "Iterations that also learn mesh-mask pseudo labels of unlabelled faces "
                                           "(their share falls from 3/4 to 0 over these)", lo=0, hi=1_000_000,
                                      ask=False, unit="iterations")
    pseudo_faces: int = option(200, "Unlabelled faces given mesh-mask pseudo labels for pretraining", lo=0, hi=100_000,
                               ask=False, unit="faces")
    lr: float = option(1e-3, "Learning rate (Adam)", lo=1e-6, hi=1.0, ask=False)
    save_every: int = option(200, "Save the model and preview every N iterations", lo=1, hi=1_000_000, ask=False,
                             unit="iterations")
    seed: int = option(0, "Seed of the augmentation", lo=0, hi=2**31 - 1, ask=False)


@dataclasses.dataclass(frozen=True)
class LiveConfig(StageConfig):
    """`facedouble live`: swap the face of a camera, stream or file as it plays (facedouble.live)."""
    source: str = option("0", "Camera (0, /dev/video0), video file, or stream URL (udp://, rtsp://, rtmp://, http://)",
                         ask=False, group="input", flags=("--source", "-s"))
    audio: Optional[str] = option(None, "Sound for the output instead of the source's own: a microphone (alsa:hw:1, "
                                        "pulse:default, avfoundation::0, dshow:audio=NAME) or an audio/video file",
                                  ask=False, group="input")
    out: str = option("live.mp4", "Result: a .mp4/.mov file, a stream URL (udp://HOST:PORT, rtmp://...), vcam, or "
                                  "none (only the UI's view)",
                      ask=False, group="output", flags=("--out", "-o"))
    model: Optional[str] = option(None, "Model folder (default: the workspace's model/)", ask=False, group="model", path=True)
    model_name: Optional[str] = option(None, "Model name inside the model folder when it holds several", ask=False,
                                       group="model")
    model_file: Optional[str] = option(None, "A DFM model file (.dfm) to use instead of a trained model folder",
                                       ask=False, group="model", path=True)
    device: str = option("auto", "Device: auto, cpu, cuda:N, mps", ask=False, group="advanced")
    detector: C.Detector = option("mediapipe", "Face detector (re-run only when tracking the landmarks fails)",
                                  group="faces")
    redetect_frames: int = option(30, "Run the detector at least every N frames even while tracking", lo=1, hi=1000,
                                  group="faces", unit="frames")
    mask: C.LiveMask = option("learned", "Mask: the model's learned mask, or the dst landmark hull", group="mask")
    color_transfer: C.ColorTransfer = option("rct", "Colour transfer of the predicted face towards dst", group="colour")
    erode: int = option(0, "Erode (+) or dilate (-) the mask, relative to face size", lo=-200, hi=200, group="mask")
    blur: int = option(50, "Blur the mask edge, relative to face size", lo=-200, hi=200, group="mask")
    face_scale: int = option(0, "Scale the output face by this percent", lo=-50, hi=50, group="mask", unit="%")
    opacity: int = option(100, "Opacity of the swapped face", lo=0, hi=100, group="blend", unit="%")
    morph: int = option(75, "Morph factor of morphable DFM models (0 = dst's face, 100 = src's)", lo=0, hi=100,
                        group="model", unit="%")
    delay_ms: int = option(0, "Hold each frame this long after capture before output (keeps audio in sync)",
                           lo=0, hi=5000, group="output", unit="ms")
    max_frames: int = option(0, "Stop after this many source frames (0 = until the source ends or Ctrl-C)",
                             lo=0, hi=100_000_000, ask=False, group="advanced", unit="frames")
