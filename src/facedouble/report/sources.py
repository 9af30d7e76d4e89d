"""Where the report's frames come from: a video, a folder of frame images, or single images, read as RGB
uint8 HWC in frame order (display rotation applied), and how a result's frames are paired with dst's."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import InputError
from ..imagefile import decode_file
from ..workspace import IMAGE_SUFFIXES


@dataclasses.dataclass
class FrameSource:
    """Frames of one input. `numbers[i]` is the frame number of frame i (1 = first): the number in the
    file name for a folder of numbered frames, the position otherwise."""

    path: Path
    kind: str                     # "video", "frames" (a folder) or "image"
    numbers: list[int]
    files: list[Path] = dataclasses.field(default_factory=list)
    numbered: bool = True         # numbers come from the file names (or a video's order), so they pair by number

    @property
    def count(self) -> int:
        return len(self.numbers)

    def describe(self) -> str:
        what = {"video": "video", "frames": "folder of frames", "image": "image"}[self.kind]
        return f"{self.path} ({what}, {self.count} frame{'s' if self.count != 1 else ''})"

    def read(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """(i, RGB uint8 frame) for the given frame indices (0-based positions), in increasing order."""
        wanted = sorted(set(int(i) for i in indices if 0 <= int(i) < self.count))
        if not wanted:
            return
        if self.kind == "video":
            yield from _read_video(self.path, wanted)
        else:
            for i in wanted:
                yield i, read_rgb(self.files[i])


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8 HWC (grey-scale, 16-bit and alpha converted)."""
    import cv2

    img = decode_file(path)
    if img is None:
        raise InputError(f"{path} is not a readable image; replace it with a PNG or JPG, or remove it.")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_grey(path: Path) -> np.ndarray:
    """A mask image as uint8 HW."""
    import cv2

    data = np.fromfile(str(path), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if img is None:
        raise InputError(f"{path} is not a readable mask image; run the merge again to rewrite it.")
    return img


def _read_video(path: Path, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    from ..video.pixels import frame_to_image
    from ..video.probe import demux_decode, open_video, rotate_image, rotation_steps

    pos = 0
    index = -1
    with open_video(path) as container:
        vs = container.streams.video[0]
        vs.codec_context.thread_type = "AUTO"
        for _, frame in demux_decode(container, vs, path):
            index += 1
            if index != wanted[pos]:
                continue
            rgb = frame_to_image(frame, "rgb24")
            yield index, np.ascontiguousarray(rotate_image(rgb, rotation_steps(frame.rotation)))
            pos += 1
            if pos >= len(wanted):
                return


def _numbered(files: list[Path]) -> tuple[list[int], bool]:
    """Frame numbers from names like 000123.png; positions when the names are not all numbers."""
    numbers = []
    for p in files:
        if not p.stem.isdigit():
            return list(range(1, len(files) + 1)), False
        numbers.append(int(p.stem))
    if len(set(numbers)) != len(numbers):
        return list(range(1, len(files) + 1)), False
    order = np.argsort(numbers, kind="stable")
    files[:] = [files[i] for i in order]
    return sorted(numbers), True


def open_source(path: str | os.PathLike, what: str) -> FrameSource:
    """A video file, an image file, or a folder of images (frames sorted by number, else by name)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{what} {path} does not exist; give a video, an image, or a folder of frames.")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{what} folder {path} holds no PNG or JPG images; give a folder of frames.")
        numbers, numbered = _numbered(files)
        return FrameSource(path, "frames", numbers, files, numbered)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return FrameSource(path, "image", [1], [path], numbered=False)
    from ..video.probe import timeline  # anything else must be a video; open_video names what is wrong

    try:
        frames = timeline(path).frames
    except InputError as e:
        raise InputError(f"{what}: {e.message}") from None
    if frames == 0:
        raise InputError(f"{what} {path} holds no video frames; give a video with frames, an image or a folder.")
    return FrameSource(path, "video", list(range(1, frames + 1)))


@dataclasses.dataclass(frozen=True)
class Pair:
    """One frame of dst and the result frame that replaces it."""

    dst: int        # index into the dst source
    result: int     # index into the result source
    number: int     # dst frame number


def pair_frames(dst: FrameSource, result: FrameSource) -> list[Pair]:
    """Pair result frames with dst frames: by frame number when both are numbered (videos, numbered
    frames), else by position. Frames only one side has are left out."""
    if dst.numbered and result.numbered:
        where = {n: i for i, n in enumerate(result.numbers)}
        return [Pair(i, where[n], n) for i, n in enumerate(dst.numbers) if n in where]
    n = min(dst.count, result.count)
    return [Pair(i, i, dst.numbers[i]) for i in range(n)]
