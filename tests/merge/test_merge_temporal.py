"""Temporal stability: the flicker metric, landmark smoothing, and less flicker with smoothing on."""

from __future__ import annotations

import numpy as np
import pytest

from facedouble.imagefile import read_rgb
from facedouble.config import MergeConfig
from facedouble.faces import regions
from facedouble.merge import merger, temporal
from support.swappers import CastSwapper


def test_flicker_of_known_sequences():
    still = [np.full((8, 8, 3), 100, np.uint8)] * 4
    assert temporal.flicker(still) == 0.0
    blink = [np.full((8, 8, 3), v, np.uint8) for v in (100, 110, 100, 110)]
    assert temporal.flicker(blink) == pytest.approx(10.0)
    mask = np.zeros((8, 8), np.float32)
    mask[:4] = 1
    half = [f.copy() for f in still]
    for f in half[1::2]:
        f[4:] = 130  # changes only outside the mask
    assert temporal.flicker(half, mask) == 0.0
    assert temporal.flicker(half) == pytest.approx(15.0)
    assert temporal.flicker(blink, mask, reference=blink) == pytest.approx(1.0)
    twice = [np.full((8, 8, 3), v, np.uint8) for v in (100, 120, 100, 120)]
    assert temporal.flicker(twice, reference=blink) == pytest.approx(2.0)
    per_frame = [mask] * 4
    assert temporal.flicker(half, per_frame) == 0.0


def test_smooth_landmarks_removes_jitter_and_keeps_motion():
    rng = np.random.default_rng(0)
    base = rng.uniform(100, 200, (68, 2)).astype(np.float32)
    truth = [base + np.array([3.0 * t, 0.0], np.float32) for t in range(30)]  # moving steadily right
    noisy = [[lm + rng.normal(0, 1.5, lm.shape).astype(np.float32)] for lm in truth]
    noisy[10] = []  # a frame without the face
    out = temporal.smooth_landmarks(noisy, 2)
    err_in = np.mean([np.abs(n[0] - t).mean() for n, t in zip(noisy, truth) if n])
    err_out = np.mean([np.abs(o[0] - t).mean() for o, t in zip(out, truth) if o])
    assert err_out < 0.7 * err_in
    assert out[10] == []
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(temporal.smooth_landmarks(noisy, 0), noisy) if a)
    # a second face far away is not mixed in
    two = [[lm, lm + 500] for lm in truth]
    sm = temporal.smooth_landmarks(two, 2)
    assert np.abs(sm[5][1] - (truth[5] + 500)).max() < 1e-3


def _flicker_of_run(ws, cfg, hulls, dst):
    merger.merge(ws, cfg, swapper=CastSwapper(128, jitter=0.06, seed=3), force=True)
    out = [read_rgb(ws.merged / p.name) for p in ws.frame_files("dst")][:11]
    return temporal.flicker(out, hulls, reference=dst)


def test_smoothing_reduces_flicker_of_a_jittery_model(dst_ws, unmarked):
    """A stand-in model whose colour gain and mask size jitter from frame to frame (as a real model's do):
    flicker inside the face relative to the dst video's own, without and with smoothing."""
    ws = dst_ws
    files = ws.frame_files("dst")[:11]  # the frames of the man's clip
    recs = merger.frame_records(ws)
    dst = [read_rgb(p) for p in files]
    hulls = [regions.hull_mask(recs[p.name][0].source_landmarks, dst[0].shape[:2]) if p.name in recs else
             np.zeros(dst[0].shape[:2], np.float32) for p in files]
    base = dict(mode="seamless", mask="learned", color_transfer="none")
    off = _flicker_of_run(ws, MergeConfig(**base, smooth_frames=0), hulls, dst)
    on = _flicker_of_run(ws, MergeConfig(**base, smooth_frames=2, suppress_seamless_jitter=True), hulls, dst)
    assert off > 1.03  # the jitter shows
    assert on < off - 0.3 * (off - 1.0), (off, on)
