"""Frame image files: fast encoding, atomic writes, backups of files about to be replaced, a small
thread pool for image work, and the `png-to-jpg` utility for aligned faces.

Arrays handed to OpenCV here are BGR uint8 HWC (the frame stages keep frames BGR end to end, because
decoding and encoding both happen in OpenCV or FFmpeg and a round trip through RGB would only cost time).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import cv2
import numpy as np

from ..errors import InputError, WorkspaceError
from ..files import atomic_write_bytes
from ..imagefile import decode_file, encode_png
from ..progress import Reporter

T = TypeVar("T")
R = TypeVar("R")

FRAME_NAME = re.compile(r"^(\d+)\.(png|jpg|jpeg)$", re.IGNORECASE)


def frame_name(number: int, suffix: str) -> str:
    """`000001.png` for frame 1 (CONTRIBUTING: 6 digits, first frame is 1)."""
    return f"{number:06d}{suffix}"


def numbered_images(folder: Path) -> list[tuple[int, Path]]:
    """(frame number, path) of the images named by number in `folder`, by number."""
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = FRAME_NAME.match(p.name)
        if m and p.is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def encode_image(bgr: np.ndarray, suffix: str, jpeg_quality: int = 95) -> bytes:
    """Encode a BGR (or grey, or BGRA for PNG) uint8 image to PNG or JPEG bytes."""
    if suffix.lower() in (".jpg", ".jpeg"):
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    else:
        return encode_png(bgr)
    if not ok:  # pragma: no cover - OpenCV only fails on impossible shapes
        raise InputError(f"Could not encode a {bgr.shape} image as {suffix}.")
    return buf.tobytes()


def write_image(path: Path, bgr: np.ndarray, jpeg_quality: int = 95) -> None:
    """Encode and write atomically (files.atomic_path): a kill mid-write leaves no half file."""
    data = encode_image(bgr, path.suffix, jpeg_quality)
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise WorkspaceError(f"Cannot write {path} ({e.strerror or e}); free some disk space or make "
                             f"{path.parent} writable, then run again to resume.") from None


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Read an image with OpenCV (BGR for IMREAD_COLOR); InputError if it is missing or unreadable."""
    image = decode_file(path, flags)
    if image is None:
        raise InputError(f"{path} is not a readable image; delete it or replace it with a PNG or JPG.")
    return image


def ensure_writable(folder: Path) -> Path:
    """Create `folder` if needed and check that files can be written in it; WorkspaceError otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".facedouble-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise WorkspaceError(f"Cannot write into {folder} ({e.strerror or e}); make it a writable folder "
                             "or choose another workspace with -w.") from None
    return folder


def backup_name(path: Path) -> Path:
    """The first free `<stem>.<n><suffix>` beside `path` (result.mp4 -> result.1.mp4, result.2.mp4, ...)."""
    n = 1
    while True:
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
        if not candidate.exists():
            return candidate
        n += 1


def keep_backup(path: Path) -> Path | None:
    """If `path` exists, rename it to a free backup name and return that name (nothing is ever deleted)."""
    if not path.exists():
        return None
    target = backup_name(path)
    os.replace(path, target)
    return target


class ImagePool:
    """A few threads for image work (colour conversion, PNG/JPEG encoding and decoding release the GIL),
    with at most `depth` jobs in flight so memory stays bounded. Errors come back in the caller's thread."""

    def __init__(self, workers: int | None = None, depth: int | None = None):
        self.workers = workers or max(2, min(8, os.cpu_count() or 2))
        self.depth = depth or self.workers * 3
        self._ex = ThreadPoolExecutor(self.workers, thread_name_prefix="facedouble-img")
        self._pending: deque[Future] = deque()

    def submit(self, fn: Callable[..., object], *args) -> None:
        """Run `fn(*args)` on a worker; blocks while `depth` jobs are in flight."""
        while self._pending and (len(self._pending) >= self.depth or self._pending[0].done()):
            self._pending.popleft().result()
        self._pending.append(self._ex.submit(fn, *args))

    def ordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """`fn` over `items` on the workers, results in order, `depth` ahead of the consumer."""
        window: deque[Future] = deque()
        for item in items:
            window.append(self._ex.submit(fn, item))
            if len(window) >= self.depth:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()

    def drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def close(self, wait_for_all: bool = True) -> None:
        if not wait_for_all:
            for f in self._pending:
                f.cancel()
        try:
            for f in self._pending:
                if not f.cancelled():
                    f.exception()  # wait; the error (if any) was or will be reported elsewhere
        finally:
            self._pending.clear()
            self._ex.shutdown(wait=True, cancel_futures=not wait_for_all)

    def __enter__(self) -> "ImagePool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.drain()
            finally:
                self.close()
        else:
            self.close(wait_for_all=False)


# -- png-to-jpg (aligned faces) ----------------------------------------------------------------------

PNG_BACKUP_DIR = "png_backup"


@dataclasses.dataclass(frozen=True)
class PngToJpgResult:
    converted: int
    backup: Path | None


def png_to_jpg(folder: str | os.PathLike, jpeg_quality: int = 95, *, delete_png: bool = False,
               reporter: Reporter | None = None) -> PngToJpgResult:
    """Convert the aligned PNG faces of `folder` to JPG with the same face record inside.

    Each PNG is moved to `<folder>/png_backup/` after its JPG is written (or deleted with
    `delete_png`). Re-running resumes: a PNG still in `folder` is simply converted again."""
    from ..errors import OptionError
    from ..faces import container

    rep = reporter or Reporter()
    folder = Path(folder)
    if not 1 <= int(jpeg_quality) <= 100:
        raise OptionError(f"--jpeg-quality must be between 1 and 100, not {jpeg_quality}.")
    if not folder.is_dir():
        raise InputError(f"Folder {folder} does not exist; give the aligned faces folder, e.g. workspace/data_src/aligned.")
    pngs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    if not pngs:
        rep.info(f"no PNG faces in {folder}; nothing to convert.")
        return PngToJpgResult(0, None)
    backup = None if delete_png else ensure_writable(folder / PNG_BACKUP_DIR)
    ensure_writable(folder)
    converted = 0
    skipped = []
    for png in rep.track(pngs, f"PNG -> JPG in {folder.name}"):
        if container.read_record(png) is None:
            skipped.append(png.name)
            continue
        image, record = container.read_face(png)
        jpg = png.with_suffix(".jpg")
        if jpg.exists():
            old = container.read_record(jpg)
            if old is None or old.to_json() != record.to_json():
                raise InputError(f"{jpg} already exists and holds another face; move it away, then run again.")
        container.write_face(jpg, image, record, jpeg_quality=int(jpeg_quality))
        if backup is None:
            png.unlink()
        else:
            target = backup / png.name
            if target.exists():
                target = backup_name(target)
            shutil.move(str(png), str(target))
        converted += 1
    if skipped:
        rep.warn(f"{len(skipped)} PNG file(s) in {folder} have no face record and were left as they are "
                 f"(first: {skipped[0]}).")
    return PngToJpgResult(converted, backup)
