"""Explicit-content screen for src and dst (DESIGN.md section 6). There is no option to skip it.

The detector is NudeNet's bundled YOLOv8-n model (`320n.onnx` in the nudenet 3.4.2 package, MIT licence),
run with onnxruntime. nudenet itself imports fine with opencv-python-headless, but its pre-processing feeds
the model BGR when given a BGR image (it swaps the channels twice), so the model file is run here directly with
the pre-processing its authors trained it with (RGB, padded to a square at the bottom/right, 320 x 320, [0, 1])
and a vectorised version of its post-processing (scores >= 0.2, boxes in image pixels, NMS 0.45).

Decision rule (`is_explicit`, per image): any of these classes at or above its score threshold
    FEMALE_GENITALIA_EXPOSED, MALE_GENITALIA_EXPOSED, ANUS_EXPOSED      >= 0.50
    FEMALE_BREAST_EXPOSED                                               >= 0.60
    BUTTOCKS_EXPOSED                                                    >= 0.75
Faces, covered body parts, exposed belly, armpits, feet and male chests never count. A set of frames is
refused when any screened frame is explicit; the error names the frames.

Where it runs: every path that brings frames or faces in, before anything is written: face extraction
(automatic, `--detector manual --rects`, `--manual-fix-deleted`), the browser UI's manual editor
(`extract_with_rect`), `util import-dfl` (every face), and a live source (`StreamScreen`, per frame).

Sampling policy (`SamplePolicy`): a set of frames whose timing is known (`frame_times`: the frame numbers and
the rate they were extracted at) is screened on every 10th frame (the first included) and the last, at most 300
frames spread evenly, but never fewer than one frame in every second of footage, however long: a src set
extracted at 1 fps or less is screened entirely. Frames whose timing is unknown (put into the folder by hand)
are treated as footage of 10 fps: every 10th frame, with no cap. Sets of up to 30 images, and faces imported
from the original tool, are screened entirely; a live source screens one frame per second of its own clock
(`StreamScreen`). `screen_image` is the one call for a source that brings images in one at a time.

Cost measured here (`python benchmarks/safety.py`: median of 72 frames of the sample videos, 640x360 and
960x540; onnxruntime on one thread): 29 ms of CPU time per screened frame whatever its size (the model sees
320 x 320), 11x decoding the frame. One frame per second therefore costs 3600 x 29 ms = 1.8 CPU-minutes
(106 s) per hour of video, about 3% of the hour; extracting the faces of that hour takes far longer. Wall time
depends on what else runs: 60-100 ms per frame on the 2 shared cores here earlier, ~1.1 s under the load of a
training run and several test runs (load average 12). A 10-minute 30 fps video (18,000 frames) screens 600.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from .errors import InputError, SafetyError
from .imagefile import decode_file
from .progress import Reporter

LABELS = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
    "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED",
)

# class -> minimum score for the image to count as explicit
THRESHOLDS: dict[str, float] = {
    "FEMALE_GENITALIA_EXPOSED": 0.50,
    "MALE_GENITALIA_EXPOSED": 0.50,
    "ANUS_EXPOSED": 0.50,
    "FEMALE_BREAST_EXPOSED": 0.60,
    "BUTTOCKS_EXPOSED": 0.75,
}

INPUT_SIZE = 320
MIN_SCORE = 0.2
NMS_IOU = 0.45
COST_MS = 29.0      # CPU ms per screened frame, measured (module docstring)


@dataclasses.dataclass(frozen=True)
class SamplePolicy:
    """Which frames of a set are screened: every `every`-th (the first included) and the last, at most
    `max_frames` spread evenly, yet at least `per_second` frames in every second of footage when the frames'
    times are known; a set of `screen_all_up_to` or fewer is screened entirely."""

    every: int = 10
    max_frames: int = 300
    screen_all_up_to: int = 30
    per_second: float = 1.0

    def pick(self, n: int, times: Sequence[float] | None = None) -> list[int]:
        """Indices (ascending) of the frames to screen of `n`. `times`: each frame's time in seconds (see
        `frame_times`); None when unknown, which screens every `every`-th frame without a cap."""
        if n <= 0:
            return []
        if n <= self.screen_all_up_to:
            return list(range(n))
        chosen = list(range(0, n, max(1, self.every)))
        if chosen[-1] != n - 1:
            chosen.append(n - 1)
        if times is None:
            return chosen
        if len(times) != n:
            raise ValueError(f"{len(times)} frame times for {n} frames")
        if len(chosen) > self.max_frames:
            chosen = sorted(set(np.linspace(0, n - 1, self.max_frames).round().astype(int).tolist()))
        # one frame in every 1/per_second of footage: the first frame of each window that has none
        window = np.floor(np.asarray(times, np.float64) * self.per_second).astype(np.int64)
        windows, first = np.unique(window, return_index=True)
        extra = first[~np.isin(windows, window[chosen])]
        return sorted(set(chosen).union(extra.tolist()))


def frame_times(names: Sequence[str | os.PathLike], fps: float | None) -> list[float] | None:
    """Each frame's time in seconds from its number (`000031.png` at 30 fps: 1.0 s); frames not named by
    number count by their position. None when `fps` is unknown (None or not positive)."""
    if fps is None or not fps > 0:
        return None
    out = []
    for i, name in enumerate(names):
        stem = os.path.splitext(os.path.basename(os.fspath(name)))[0]
        number = int(stem) if stem.isdigit() else i + 1
        out.append((number - 1) / float(fps))
    return out


DEFAULT_POLICY = SamplePolicy()


@dataclasses.dataclass
class ScreenResult:
    total: int                                  # images in the set
    screened: int                               # images looked at
    flagged: list[tuple[str, list[dict]]]       # (name, the detections that made it explicit)
    seconds: float

    @property
    def explicit(self) -> bool:
        return bool(self.flagged)

    @property
    def ms_per_image(self) -> float:
        return 1000.0 * self.seconds / max(self.screened, 1)


# -- the decision rule (pure) --------------------------------------------------------------------------

def explicit_detections(detections: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The detections that make an image explicit (see THRESHOLDS)."""
    return [d for d in detections if d.get("class") in THRESHOLDS and float(d.get("score", 0.0)) >= THRESHOLDS[d["class"]]]


def is_explicit(detections: Iterable[dict[str, Any]]) -> bool:
    """True when any detection is an exposed genital, anus, female breast or buttocks class at or above its
    threshold. `detections`: [{"class": LABEL, "score": float, ...}], as `detect` returns."""
    return bool(explicit_detections(detections))


# -- the detector ----------------------------------------------------------------------------------------

_session = None
_session_lock = threading.Lock()


def model_path() -> Path:
    """The ONNX model bundled with nudenet 3.4.2 (found without importing nudenet)."""
    spec = importlib.util.find_spec("nudenet")
    if spec is None or spec.origin is None:
        raise SafetyError("The explicit-content screen needs the nudenet package, which is missing; install it "
                          "with `pip install --no-deps nudenet==3.4.2` (there is no way to skip the screen).")
    path = Path(spec.origin).parent / "320n.onnx"
    if not path.is_file():
        raise SafetyError(f"The explicit-content model {path} is missing; reinstall nudenet with "
                          "`pip install --no-deps --force-reinstall nudenet==3.4.2`.")
    return path


def _get_session():
    global _session
    with _session_lock:
        if _session is None:
            try:
                import onnxruntime as ort
            except ImportError:
                raise SafetyError("The explicit-content screen needs onnxruntime, which is missing; install it "
                                  "with `pip install onnxruntime` (there is no way to skip the screen).") from None
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            opts.intra_op_num_threads = 1   # predictable on shared CPUs; measured faster than 2 under load
            _session = ort.InferenceSession(str(model_path()), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        return _session


def _to_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise InputError("The explicit-content screen takes uint8 images; convert the image first.")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[..., :3])
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise InputError(f"The explicit-content screen takes RGB images, not an array of shape {image.shape}.")


def _preprocess(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """(1, 3, 320, 320) float32 RGB in [0, 1] of the image padded to a square (bottom/right), and that side."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    padded = cv2.copyMakeBorder(rgb, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    small = cv2.resize(padded, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    return (small.astype(np.float32) / 255.0).transpose(2, 0, 1)[None], side


def _postprocess(output: np.ndarray, side: int, h: int, w: int) -> list[dict[str, Any]]:
    rows = np.asarray(output)[0].T                       # (anchors, 4 + classes)
    scores = rows[:, 4:]
    cls = scores.argmax(axis=1)
    best = scores[np.arange(len(rows)), cls]
    keep = best >= MIN_SCORE
    if not keep.any():
        return []
    rows, cls, best = rows[keep], cls[keep], best[keep]
    k = side / INPUT_SIZE
    x = (rows[:, 0] - rows[:, 2] / 2) * k
    y = (rows[:, 1] - rows[:, 3] / 2) * k
    bw, bh = rows[:, 2] * k, rows[:, 3] * k
    x, y = np.clip(x, 0, w), np.clip(y, 0, h)
    bw, bh = np.minimum(bw, w - x), np.minimum(bh, h - y)
    boxes = np.stack([x, y, bw, bh], axis=1)
    idx = cv2.dnn.NMSBoxes(boxes.tolist(), best.tolist(), 0.25, NMS_IOU)
    out = []
    for i in np.asarray(idx).reshape(-1):
        out.append({"class": LABELS[int(cls[i])], "score": float(best[i]),
                    "box": [int(v) for v in boxes[i]]})
    return out


def detect(image: np.ndarray) -> list[dict[str, Any]]:
    """NudeNet detections for one RGB uint8 HWC image: [{"class", "score", "box": [x, y, w, h]}]."""
    rgb = _to_rgb(image)
    blob, side = _preprocess(rgb)
    session = _get_session()
    out = session.run(None, {session.get_inputs()[0].name: blob})[0]
    return _postprocess(out, side, rgb.shape[0], rgb.shape[1])


def _load(item: np.ndarray | str | os.PathLike) -> tuple[str, np.ndarray]:
    if isinstance(item, np.ndarray):
        return "image", item
    path = Path(item)
    img = decode_file(path) if path.is_file() else None
    if img is None:
        raise InputError(f"{path} cannot be read as an image; check that it is a complete PNG or JPEG file.")
    return path.name, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def refusal(flagged: list[tuple[str, list[dict]]], where: str, unit: str = "frames") -> SafetyError:
    """The SafetyError naming the flagged images (`(name, detections)`, as ScreenResult.flagged) of `where`."""
    names = [n for n, _ in flagged]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return SafetyError(f"Explicit sexual content was found in {where} ({unit} {shown}); facedouble does not "
                       "work on such material and this check cannot be turned off.")


def screen_image(image: np.ndarray | str | os.PathLike, *, name: str | None = None, what: str = "the input",
                 unit: str = "frame") -> list[dict[str, Any]]:
    """Screen one image now (RGB uint8 HWC array, or an image file): the call for every source that brings
    frames or faces in one at a time (the browser UI's manual editor, a live source through `StreamScreen`).
    Raises SafetyError naming `what` and `name` when the image is explicit; returns the detector's findings
    otherwise. Costs one model run: 29 ms of CPU measured here, so one frame per second of footage costs
    3600 x 29 ms = 106 CPU-seconds per hour of video (benchmarks/safety.py)."""
    label, img = _load(image)
    hits = explicit_detections(detect(img))
    if hits:
        raise refusal([(name or (label if label != "image" else "1"), hits)], what, unit)
    return hits


class StreamScreen:
    """The screen of a live source: `offer(image, t)` is called with every frame and its time in seconds on
    the source's clock; the first frame and then one frame in every `interval` seconds are screened
    (`screen_image`), and SafetyError stops the source at the first explicit one. At 1 s this costs what
    screening one frame per second of a video does (module docstring)."""

    def __init__(self, what: str, interval: float = 1.0) -> None:
        if not interval > 0:
            raise InputError(f"The screen's interval must be positive, not {interval!r}.")
        self.what = what
        self.interval = float(interval)
        self.screened = 0
        self._next: float | None = None

    def due(self, t: float) -> bool:
        """Whether the frame at time `t` will be screened."""
        return self._next is None or t >= self._next or t < self._next - 2 * self.interval  # clock went back

    def offer(self, image: np.ndarray, t: float) -> bool:
        """Screen the frame when one is due (True when it was screened); SafetyError when it is explicit."""
        if not self.due(t):
            return False
        screen_image(image, name=f"at {t:.1f} s", what=self.what)
        self.screened += 1
        self._next = math.floor(t / self.interval + 1e-9) * self.interval + self.interval
        return True


def screen_images(images: Sequence[np.ndarray | str | os.PathLike], policy: SamplePolicy = DEFAULT_POLICY, *,
                  times: Sequence[float] | None = None, reporter: Reporter | None = None,
                  names: Sequence[str] | None = None) -> ScreenResult:
    """Run the screen on the images of `policy.pick(len(images), times)` (arrays: RGB uint8 HWC; or file
    paths). `names`: how to name each image in the result (default: the file name, or "image N").
    Never raises for explicit content; `screen_frames` does."""
    rep = reporter or Reporter()
    picked = policy.pick(len(images), times)
    flagged: list[tuple[str, list[dict]]] = []
    start = time.perf_counter()
    for i in rep.track(picked, "Explicit-content screen"):
        name, img = _load(images[i])
        if names is not None:
            name = names[i]
        elif name == "image":
            name = f"image {i + 1}"
        hits = explicit_detections(detect(img))
        if hits:
            flagged.append((name, hits))
    return ScreenResult(total=len(images), screened=len(picked), flagged=flagged,
                        seconds=time.perf_counter() - start)


def screen_frames(paths: Sequence[str | os.PathLike], *, reporter: Reporter | None = None,
                  policy: SamplePolicy = DEFAULT_POLICY, what: str | None = None,
                  fps: float | None = None) -> ScreenResult:
    """The screen the extraction stage runs on the frames of src and dst before anything else. Raises
    SafetyError naming the frames when explicit content is found; there is no way to skip it.
    `fps`: the rate the frames were taken at (their times come from their numbers, `frame_times`), so that
    at least one frame per second of footage is screened; None when unknown (see SamplePolicy).
    `what`: how to name the set in the message (default: the frames' folder).
    Cost: 29 CPU-ms per screened frame, 106 CPU-seconds per hour of video at one frame per second (30 fps
    footage: 3600 of its 108,000 frames)."""
    paths = list(paths)
    result = screen_images(paths, policy, times=frame_times(paths, fps), reporter=reporter)
    if result.explicit:
        where = what or (str(Path(paths[0]).parent) if paths else "the input")
        raise refusal(result.flagged, where)
    return result


def sample_count(n: int, policy: SamplePolicy = DEFAULT_POLICY, fps: float | None = None) -> int:
    """How many of n consecutive frames taken at `fps` the policy screens."""
    return len(policy.pick(n, frame_times([f"{i + 1:06d}" for i in range(n)], fps)))


def estimate_seconds(n: int, ms_per_image: float = COST_MS, policy: SamplePolicy = DEFAULT_POLICY,
                     fps: float | None = None) -> float:
    return math.ceil(sample_count(n, policy, fps) * ms_per_image) / 1000.0
