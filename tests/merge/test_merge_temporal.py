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


def test_track_average_follows_each_face_and_leaves_others_alone():
    """A value of each face (e.g. the model's code) averaged over its own track only: two people side by side keep
    their own values, a face missing in a neighbour frame is left out, the window's ends are normalised."""
    from facedouble.merge.temporal import track_average

    def face(x):
        return np.array([[x, 100.0], [x + 40, 100.0], [x + 20, 150.0]], np.float32)

    tracks = [[face(0), face(300)] for _ in range(5)]
    tracks[3] = [face(300)]  # the left face is missing in frame 3
    values = [[np.array([t * 1.0]), np.array([100.0 + t])] for t in range(5)]
    values[3] = [np.array([103.0])]
    out = track_average(tracks, values, 2)
    # the right face, frame 2: 1-2-3-2-1 over 100..104 -> 102; the left face never mixes with it
    assert out[2][1][0] == pytest.approx(102.0)
    assert all(v[0] < 5 for faces in out[:3] for v in faces[:1]) and out[3][0][0] == pytest.approx(103.0, abs=0.6)
    # frame 2's left face: frames 0, 1, 2, 4 (3 has none) with weights 1, 2, 3, 1 -> (0 + 2 + 6 + 4) / 7
    assert out[2][0][0] == pytest.approx(12 / 7)
    # frame 0 (an end): itself and frames 1-2 with weights 3, 2, 1 -> (0 + 2 + 2) / 6
    assert out[0][0][0] == pytest.approx(4 / 6)
    assert track_average(tracks, values, 0)[2][0][0] == 2.0


def test_averaged_codes_steady_the_face_of_a_model_whose_code_wobbles(dst_ws, unmarked):
    """--smooth-codes: a stand-in model whose code wobbles from frame to frame (CodeJitterSwapper) gives a face
    whose frame-to-frame change falls to about half with the codes averaged over 2 frames each side (the theory
    for independent wobble: 0.48x) and further with the default's 5; every face is decoded from a code, once."""
    from support.swappers import CodeJitterSwapper

    ws = dst_ws
    files = ws.frame_files("dst")[:11]
    recs = merger.frame_records(ws)
    hulls = [regions.hull_mask(recs[p.name][0].source_landmarks, (360, 640)) if p.name in recs else
             np.zeros((360, 640), np.float32) for p in files]
    change = {}
    for k in (0, 2, MergeConfig().smooth_codes):
        sw = CodeJitterSwapper(128, jitter=0.06, seed=5)
        cfg = MergeConfig(mode="overlay", mask="dst", color_transfer="none", smooth_frames=0, smooth_codes=k)
        summary = merger.merge(ws, cfg, swapper=sw, force=True)
        assert sw.decoded == summary.faces  # each face through the model once
        out = [read_rgb(ws.merged / p.name) for p in files]
        change[k] = temporal.flicker(out, hulls)
    assert change[2] < 0.7 * change[0], change
    assert MergeConfig().smooth_codes == 5 and change[5] < 0.9 * change[2], change


def test_a_model_without_codes_merges_as_before_and_says_so_once(dst_ws, unmarked):
    from facedouble.progress import Reporter
    from support.swappers import IdentitySwapper

    ws = dst_ws
    rep = Reporter()
    merger.merge(ws, MergeConfig(mode="overlay", mask="dst", smooth_codes=0), swapper=IdentitySwapper(128))
    plain = [read_rgb(ws.merged / p.name) for p in ws.frame_files("dst")]
    merger.merge(ws, MergeConfig(mode="overlay", mask="dst", smooth_codes=3), swapper=IdentitySwapper(128),
                 reporter=rep, force=True)
    assert all(np.array_equal(a, read_rgb(ws.merged / p.name)) for a, p in zip(plain, ws.frame_files("dst")))
    assert sum("--smooth-codes" in m for m in rep.messages) == 1, rep.messages
