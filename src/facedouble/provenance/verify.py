"""`facedouble verify`: which provenance marks an image or a video carries (DESIGN.md section 6).

For each file: the invisible watermark (for a video, up to 10 frames spread evenly over its length are read
and their soft bits summed), the C2PA manifest (valid / invalid / absent, with its claims) and, for a video,
the container tag. A file counts as marked when the watermark is found, or when a valid C2PA manifest declares
it AI-generated (an action whose digitalSourceType is trained algorithmic media, as facedouble writes).
The CLI and the web UI both call `verify_file`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from . import watermark
from .credentials import read_manifest
from .tag import read_tag

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_FRAMES = 10
_AI_SOURCE_TYPES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "compositeSynthetic",
                    "algorithmicMedia")


@dataclasses.dataclass
class VerifyReport:
    path: str
    kind: str                      # "image" or "video"
    watermark: dict[str, Any]      # Detection.to_dict() + frames_checked, frames_found
    c2pa: dict[str, Any]           # ManifestInfo.to_dict()
    tag: dict[str, Any] | None     # the container tag of a video (None: none, or an image)
    marked: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _declares_ai(manifest: dict[str, Any]) -> bool:
    for action in manifest.get("claims", {}).get("actions", []):
        source = str(action.get("digitalSourceType", ""))
        if any(source.endswith("/" + t) for t in _AI_SOURCE_TYPES):
            return True
    return False


def read_image_rgb(path: Path) -> np.ndarray:
    """An image file as RGB (or RGBA) uint8 HWC. Raises InputError when it cannot be decoded."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise InputError(f"{path} cannot be read as an image; check that it is a complete PNG or JPEG file.")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def sample_video_frames(path: Path, count: int = VIDEO_FRAMES) -> list[np.ndarray]:
    """Up to `count` RGB frames spread evenly over the video. Short videos are decoded straight through;
    long ones are sought (to the keyframe before each time, then decoded forward)."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise InputError(f"{path} cannot be read as an image or a video ({e}); check that the file is complete.") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path} holds no video stream; give an image or a video.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        total = stream.frames or 0
        try:
            if 0 < total <= 600:
                wanted = set(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist())
                frames, last, i = [], None, -1
                for i, frame in enumerate(container.decode(stream)):
                    if i in wanted:
                        frames.append(frame.to_ndarray(format="rgb24"))
                    if i >= max(wanted):
                        break
                    last = frame
                if i < max(wanted) and last is not None:   # the stream held fewer frames than it said
                    frames.append(last.to_ndarray(format="rgb24"))
                return frames
            return _seek_frames(container, stream, count)
        except av.error.FFmpegError as e:
            raise InputError(f"{path} could not be decoded ({e}); check that the video is complete.") from None


def _seek_frames(container, stream, count: int) -> list[np.ndarray]:
    tb = float(stream.time_base or 0) or 1 / 90000
    if stream.duration:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    else:
        duration = 0.0
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    if duration <= 0:  # unknown length: the first frames it gives
        frames = []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= count:
                break
        return frames
    frames = []
    for k in range(count):
        t = start + (k + 0.5) / count * duration
        container.seek(int(t / tb), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.time is None or frame.time >= t - 0.5 / max(float(stream.average_rate or 25), 1):
                frames.append(frame.to_ndarray(format="rgb24"))
                break
    return frames


def verify_file(path: str | Path) -> VerifyReport:
    """The provenance marks of one image or video. Raises InputError when the file is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; give the path of an image or a video.")
    if not path.is_file():
        raise InputError(f"{path} is not a file; give the path of an image or a video.")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as e:
        raise InputError(f"{path} cannot be read ({e.strerror or e}); check its permissions.") from None

    if path.suffix.lower() in IMAGE_SUFFIXES:
        kind = "image"
        image = read_image_rgb(path)
        det = watermark.detect(image)
        wm = det.to_dict()
        wm.update(frames_checked=1, frames_found=int(det.found))
        tag = None
    else:
        kind = "video"
        frames = sample_video_frames(path)
        if not frames:
            raise InputError(f"{path} holds no decodable video frames; check that the video is complete.")
        per_frame = [watermark.detect(f, search=False) for f in frames]
        det = watermark.detect_frames(frames)
        wm = det.to_dict()
        alone = sum(1 for d in per_frame if d.found)
        if det.found and det.frames == 1:
            alone = max(alone, 1)   # found by the crop search in one frame
        # frames_found: frames read on their own (the sum of all frames may decode when none does alone)
        wm.update(frames_checked=len(frames), frames_found=alone)
        tag = read_tag(path)
    manifest = read_manifest(path).to_dict()
    marked = bool(wm["found"]) or (manifest["state"] == "valid" and _declares_ai(manifest))
    return VerifyReport(path=str(path), kind=kind, watermark=wm, c2pa=manifest, tag=tag, marked=marked)
