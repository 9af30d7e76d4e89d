"""The explicit-content screen of the frames about to be extracted (there is no option to skip it)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import FaceDoubleError, InputError
from ..progress import Reporter
from ..imagefile import read_rgb


def _readable(path: Path) -> bool:
    try:
        read_rgb(path)
        return True
    except InputError:
        return False


def load_safety():
    """facedouble.safety, with one clear sentence when an installation lacks it (extraction cannot run without it)."""
    import importlib

    try:
        return importlib.import_module("facedouble.safety")
    except ModuleNotFoundError as e:
        if e.name != "facedouble.safety":
            raise
        raise FaceDoubleError("The explicit-content screen (facedouble.safety) is missing from this installation; "
                              "reinstall facedouble (extraction cannot run without it).") from None


def screen_todo(paths: list[Path], reporter: Reporter, fps: Optional[float] = None) -> None:
    """Explicit-content screen of the frames about to be extracted (safety.py raises SafetyError; there is no
    option to skip it): at least one frame per second of footage when `fps` (the frames' rate) is known. The
    screen refuses unreadable files, which extraction skips and lists instead, so a sampled frame that cannot
    be read is replaced by the nearest readable one."""
    if not paths:
        return
    safety = load_safety()
    paths = list(paths)
    seen: dict[Path, bool] = {}

    def ok(p: Path) -> bool:
        if p not in seen:
            seen[p] = _readable(p)
        return seen[p]

    policy = getattr(safety, "DEFAULT_POLICY", None)
    times = safety.frame_times(paths, fps) if hasattr(safety, "frame_times") else None
    picked = list(policy.pick(len(paths), times)) if policy is not None else list(range(len(paths)))
    for i in picked:
        if ok(paths[i]):
            continue
        for d in range(1, len(paths)):
            near = [j for j in (i - d, i + d) if 0 <= j < len(paths)]
            if not near:
                break
            good = next((j for j in near if ok(paths[j])), None)
            if good is not None:
                paths[i] = paths[good]
                break
    if not any(ok(paths[i]) for i in picked):
        return          # not one readable frame: each is skipped and listed as unreadable
    safety.screen_frames(paths, reporter=reporter, fps=fps)
