"""Per-frame merge settings, edited the way the original interactive merger did: options set on one frame are
applied to that frame, to it and every following frame until the next change, or to all frames.

Pure functions over `MergeConfig` (its `ranges` and `for_frame` are in config.py); the merge tuner's config
route calls `apply_options`, the merger reads the result through `MergeConfig.for_frame`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from ..config import MERGE_FRAME_OPTIONS, FrameRange, MergeConfig
from ..errors import OptionError

Scope = Literal["frame", "following", "all"]
SCOPES: tuple[str, ...] = ("frame", "following", "all")


def next_change(cfg: MergeConfig, number: int) -> Optional[int]:
    """The first frame after `number` whose options may differ from frame `number`'s (a range starts there or the
    previous frame ended one); None when the options stay the same to the last frame."""
    cuts = [r.start for r in cfg.ranges if r.start > number]
    cuts += [r.end + 1 for r in cfg.ranges if r.end is not None and r.end + 1 > number]
    return min(cuts) if cuts else None


def run_changes(cfg: MergeConfig, wanted: MergeConfig) -> list[str]:
    """The options that apply to the whole run (not MERGE_FRAME_OPTIONS) whose value `wanted` changes."""
    return [f.name for f in dataclasses.fields(MergeConfig)
            if f.name != "ranges" and f.name not in MERGE_FRAME_OPTIONS and getattr(cfg, f.name) != getattr(wanted, f.name)]


def apply_options(cfg: MergeConfig, number: int, wanted: MergeConfig, scope: str) -> MergeConfig:
    """`cfg` with the options `wanted` (a frame's options as the tuner's form holds them) applied from frame
    `number` on: "frame" to that frame only, "following" to it and the frames after it up to the next change
    (`next_change`), "all" to every frame (the ranges are dropped). Options that cannot change per frame always
    apply to the whole run. Neighbouring ranges with equal options are joined, and a range left with nothing
    that differs from the config's own options is removed."""
    if scope not in SCOPES:
        raise OptionError(f"The scope must be one of {', '.join(SCOPES)}, not {scope!r}.")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise OptionError(f"The frame must be a frame number (1 or more), not {number!r}.")
    if scope == "all":
        return dataclasses.replace(wanted, ranges=())
    base = dataclasses.replace(cfg, ranges=(), **{k: getattr(wanted, k) for k in run_changes(cfg, wanted)})
    if scope == "frame":
        lo, hi = number, number
    else:
        after = next_change(cfg, number)
        lo, hi = number, None if after is None else after - 1
    kept: list[FrameRange] = []
    for r in cfg.ranges:  # cut [lo, hi] out of the ranges it overlaps; what is left keeps its options
        if r.start < lo:
            kept.append(FrameRange(r.start, lo - 1 if r.end is None or r.end >= lo else r.end, r.options))
        if hi is not None and (r.end is None or r.end > hi) and (r.end is None or r.end >= lo):
            kept.append(FrameRange(max(r.start, hi + 1), r.end, r.options))
    over = tuple((k, getattr(wanted, k)) for k in MERGE_FRAME_OPTIONS if getattr(wanted, k) != getattr(base, k))
    kept.append(FrameRange(lo, hi, tuple(sorted(over))))
    return dataclasses.replace(base, ranges=tuple(_joined(kept, base)))


def _joined(ranges: list[FrameRange], base: MergeConfig) -> list[FrameRange]:
    """Ranges sorted, without those that change nothing, and neighbours with equal options joined into one."""
    out: list[FrameRange] = []
    for r in sorted(ranges, key=lambda r: r.start):
        options = tuple(sorted((k, v) for k, v in r.options if getattr(base, k) != v))
        if not options:
            continue
        if out and out[-1].end is not None and out[-1].end + 1 == r.start and out[-1].options == options:
            out[-1] = FrameRange(out[-1].start, r.end, options)
        else:
            out.append(FrameRange(r.start, r.end, options))
    return out
