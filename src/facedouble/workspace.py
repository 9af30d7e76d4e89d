"""The workspace folder (DESIGN.md section 1): paths, layout creation, clearing."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .choices import Side
from .errors import InputError, WorkspaceError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Workspace:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root).expanduser().resolve())

    # -- layout -------------------------------------------------------------------------------
    def frames(self, side: Side) -> Path:
        return self.root / f"data_{side}"

    def aligned(self, side: Side) -> Path:
        return self.frames(side) / "aligned"

    def aligned_debug(self, side: Side) -> Path:
        return self.frames(side) / "aligned_debug"

    def aligned_trash(self, side: Side) -> Path:
        return self.frames(side) / "aligned_trash"

    @property
    def merged(self) -> Path:
        return self.frames("dst") / "merged"

    @property
    def merged_mask(self) -> Path:
        return self.frames("dst") / "merged_mask"

    @property
    def model(self) -> Path:
        return self.root / "model"

    def result(self, suffix: str = ".mp4") -> Path:
        return self.root / f"result{suffix}"

    def config_file(self, config: type, side: Side | None = None) -> Path:
        """Where a stage saves its options (a StageConfig class's FILE, in its PLACE: the workspace root,
        data_<side>/ or data_dst/)."""
        if config.FILE is None:
            raise ValueError(f"{config.__name__} is not saved in a workspace")
        if config.PLACE == "side":
            if side not in ("src", "dst"):
                raise ValueError(f"{config.__name__} is saved per side: give src or dst, not {side!r}")
            return self.frames(side) / config.FILE
        return (self.frames("dst") if config.PLACE == "dst" else self.root) / config.FILE

    def layout(self) -> list[Path]:
        """Every folder of the layout, parents first."""
        out = [self.root]
        for side in ("src", "dst"):
            out += [self.frames(side), self.aligned(side), self.aligned_debug(side), self.aligned_trash(side)]
        return out + [self.merged, self.merged_mask, self.model]

    # -- inputs ---------------------------------------------------------------------------------
    def video(self, side: Side) -> Path:
        """The data_src.* / data_dst.* video; a clear error when there is none or several."""
        found = sorted(p for p in self.root.glob(f"data_{side}.*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        if not found:
            raise InputError(
                f"No data_{side} video in {self.root}; put one there as data_{side}.mp4 (or .mov, .mkv, .avi)."
            )
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise InputError(f"Several data_{side} videos in {self.root} ({names}); keep only one.")
        return found[0]

    def frame_files(self, side: Side) -> list[Path]:
        """Frame images of a side, sorted by name (names sort by frame number)."""
        folder = self.frames(side)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

    def face_files(self, side: Side) -> list[Path]:
        folder = self.aligned(side)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

    # -- actions --------------------------------------------------------------------------------
    def create(self) -> "Workspace":
        try:
            for folder in self.layout():
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WorkspaceError(f"Cannot create the workspace at {self.root} ({e.strerror}); choose a writable folder.") from None
        return self

    def require(self) -> "Workspace":
        if not self.root.is_dir():
            raise WorkspaceError(f"Workspace {self.root} does not exist; create it with `facedouble workspace init {self.root}`.")
        return self

    def clear(self, keep_videos: bool = True) -> list[Path]:
        """Remove everything in the workspace except the input videos (unless told), then re-create the layout.

        Returns the paths removed."""
        self.require()
        removed = []
        for entry in sorted(self.root.iterdir()):
            is_input = entry.is_file() and entry.stem in ("data_src", "data_dst") and entry.suffix.lower() in VIDEO_SUFFIXES
            if keep_videos and is_input:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        self.create()
        return removed
