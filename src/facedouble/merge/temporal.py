"""Temporal stability (pure functions): the flicker metric and smoothing over neighbouring frames.

A face in frame t is smoothed with the same face in frames t-k..t+k (matched by position), with
triangular weights k+1-|d|. What is smoothed lives in face space (aligned coordinates), so averaging does
not blur the moving head: the 68 landmarks, the mask, the dst colours that colour transfer aims at (pooled,
not the transfer itself: that would bring back the model's own frame-to-frame drift, which the transfer
removes), and the low frequencies of the Poisson-blended face.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def flicker(frames: Sequence[np.ndarray] | np.ndarray, masks: np.ndarray | Sequence[np.ndarray] | None = None,
            reference: Sequence[np.ndarray] | np.ndarray | None = None) -> float:
    """Mean frame-to-frame change inside the face region, optionally relative to a reference video's own.

    Args:
        frames: T frames, each (H, W, 3) or (H, W), uint8 or float (any one scale).
        masks: (H, W) mask used for every frame, or T masks (H, W); a pixel counts for the pair (t-1, t)
            with weight max(mask[t-1], mask[t]). None: the whole frame.
        reference: T frames of the same size (the dst video): the result is then
            flicker(frames) / flicker(reference), so 1.0 means "as steady as the original".

    Returns:
        Mean absolute change per pixel and channel between consecutive frames inside the mask (in the
        frames' units), or the ratio when `reference` is given. 0.0 for fewer than two frames.
    """
    value = _mean_change(frames, masks)
    if reference is None:
        return value
    base = _mean_change(reference, masks)
    return value / base if base > 0 else float("inf") if value > 0 else 1.0


def _mean_change(frames, masks) -> float:
    n = len(frames)
    if n < 2:
        return 0.0
    per_frame = masks is not None and not (isinstance(masks, np.ndarray) and masks.ndim == 2)
    total, weight = 0.0, 0.0
    prev = np.asarray(frames[0], np.float32)
    for t in range(1, n):
        cur = np.asarray(frames[t], np.float32)
        diff = np.abs(cur - prev)
        if diff.ndim == 3:
            diff = diff.mean(axis=2)
        if masks is None:
            w = np.ones(diff.shape, np.float32)
        elif per_frame:
            w = np.maximum(np.asarray(masks[t - 1], np.float32), np.asarray(masks[t], np.float32))
        else:
            w = np.asarray(masks, np.float32)
        total += float((diff * w).sum())
        weight += float(w.sum())
        prev = cur
    return total / weight if weight > 0 else 0.0


def window_weights(radius: int) -> np.ndarray:
    """Triangular weights for offsets -radius..radius (2 radius + 1 values, peak 1 at 0)."""
    d = np.arange(-radius, radius + 1)
    return ((radius + 1 - np.abs(d)) / (radius + 1)).astype(np.float64)


def match_track(centre: np.ndarray, size: float, candidates: Sequence[np.ndarray], tolerance: float = 0.35) -> int | None:
    """Index of the candidate centre nearest to `centre` within tolerance x size, else None."""
    best, best_d = None, tolerance * size
    for i, c in enumerate(candidates):
        d = float(np.hypot(*(np.asarray(c) - centre)))
        if d <= best_d:
            best, best_d = i, d
    return best


def smooth_landmarks(tracks: Sequence[Sequence[np.ndarray | None]], radius: int) -> list[list[np.ndarray | None]]:
    """Smooth landmark sets over time: `track_average` of the landmarks themselves.

    Args:
        tracks: per frame, a list of (68, 2) landmark arrays (one per face) — faces are matched between
            frames by the centre of their landmarks (within 35% of the face size).
        radius: frames each side; 0 returns copies.

    Returns:
        The same structure with each face's landmarks replaced by the weighted mean of its matches.
    """
    return track_average(tracks, tracks, radius)


def track_average(tracks: Sequence[Sequence[np.ndarray | None]], values: Sequence[Sequence[np.ndarray | None]],
                  radius: int) -> list[list[np.ndarray | None]]:
    """Average a value of each face over neighbouring frames, along the face's track.

    Args:
        tracks: per frame, a list of (68, 2) landmark arrays (one per face, None for none): faces are matched
            between frames by the centre of their landmarks (within 35% of the face size), so two people are
            never mixed.
        values: the same structure: an array per face (its landmarks, the model's code of it, ...), or None
            where there is none (it is then left out of its neighbours' means).
        radius: frames each side, with triangular weights (`window_weights`); 0 returns copies.

    Returns:
        The same structure, float32: each value replaced by the weighted mean of its own and its matches'.
    """
    out: list[list[np.ndarray | None]] = [[None if v is None else np.asarray(v, np.float32).copy() for v in faces]
                                          for faces in values]
    if radius <= 0:
        return out
    weights = window_weights(radius)
    centres = [[None if lm is None else np.asarray(lm, np.float64).mean(0) for lm in faces] for faces in tracks]
    for t, faces in enumerate(tracks):
        for i, lm in enumerate(faces):
            if lm is None or values[t][i] is None:
                continue
            lm64 = np.asarray(lm, np.float64)
            size = float(np.ptp(lm64[:, 0]) + np.ptp(lm64[:, 1])) / 2
            acc = np.asarray(values[t][i], np.float64) * weights[radius]
            total = weights[radius]
            for d in range(1, radius + 1):
                for s in (t - d, t + d):
                    if s < 0 or s >= len(tracks):
                        continue
                    cand = [c if c is not None else np.array([np.inf, np.inf]) for c in centres[s]]
                    j = match_track(centres[t][i], size, cand)
                    if j is None or values[s][j] is None:
                        continue
                    acc += np.asarray(values[s][j], np.float64) * weights[radius + d]
                    total += weights[radius + d]
            out[t][i] = (acc / total).astype(np.float32)
    return out


def low_pass(offset: np.ndarray, weight: np.ndarray, grid: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Weighted cell means of a face-space field (e.g. a blended face): its low frequencies.

    Args:
        offset: (s, s, C) float32. weight: (s, s) float32 (where the field is valid).
        grid: cells per side.

    Returns:
        (grid, grid, C) mean offset per cell (0 where a cell has no weight) and (grid, grid) cell weights
        (the mean weight in the cell).
    """
    import cv2

    w = np.asarray(weight, np.float32)
    num = cv2.resize(offset * w[..., None], (grid, grid), interpolation=cv2.INTER_AREA)
    den = cv2.resize(w, (grid, grid), interpolation=cv2.INTER_AREA)
    if num.ndim == 2:
        num = num[..., None]
    mean = np.where(den[..., None] > 1e-4, num / np.maximum(den[..., None], 1e-4), 0.0).astype(np.float32)
    return mean, den.astype(np.float32)


def smoothed_correction(own: tuple[np.ndarray, np.ndarray], others: Sequence[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
    """(grid, grid, C) correction that moves this frame's low frequencies to the weighted mean of its
    neighbours' (and its own): sum(w_t c_t o_t) / sum(w_t c_t) - o_own, with c the cell weights.

    Args:
        own: (offset cells, cell weights) of this frame.
        others: (offset cells, cell weights, time weight) of the neighbouring frames.
    """
    o, c = own
    num = o * c[..., None]
    den = c.copy()
    for oo, cc, tw in others:
        num = num + oo * (cc * tw)[..., None]
        den = den + cc * tw
    mean = np.where(den[..., None] > 1e-4, num / np.maximum(den[..., None], 1e-4), o)
    return (mean - o).astype(np.float32)

