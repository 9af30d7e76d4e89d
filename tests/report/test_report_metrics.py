"""The report's pure metric functions, each against a value known in advance."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest

from facedouble.merge import temporal
from facedouble.report import metrics as M


@lru_cache(maxsize=1)
def _face(media_path: str) -> np.ndarray:
    """68 landmarks of the man in single_face.jpg (dlib HOG + dlib's predictor: no model start-up cost)."""
    import cv2

    from facedouble.faces.detect import make_detector
    from facedouble.faces.landmarks import default_landmarker

    img = cv2.cvtColor(cv2.imread(media_path), cv2.COLOR_BGR2RGB)
    det = make_detector("dlib").detect(img)[0]
    return default_landmarker()(img, det.rect, "dlib")


@pytest.fixture(scope="module")
def lm(media) -> np.ndarray:
    return _face(str(media / "single_face.jpg"))


# -- pixels ------------------------------------------------------------------------------------------------------

def test_psnr_known_values():
    a = np.zeros((10, 10, 3), np.uint8)
    b = np.full((10, 10, 3), 10, np.uint8)
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 100.0))   # 28.13 dB
    assert M.psnr(a, a) == math.inf
    mask = np.zeros((10, 10), bool)
    mask[:, :5] = True
    c = a.copy()
    c[:, 5:] = 200                     # changed only outside the mask
    assert M.psnr(c, a, mask) == math.inf
    assert math.isnan(M.psnr(a, b, np.zeros((10, 10), bool)))
    # pooling: the squared error of two halves adds up to the whole image's
    s1, n1 = M.squared_error(b, a, mask)
    s2, n2 = M.squared_error(b, a, ~mask)
    assert M.psnr_from_mse((s1 + s2) / (n1 + n2)) == pytest.approx(M.psnr(b, a))
    # float masks count from 0.5
    assert M.psnr(c, a, mask.astype(np.float32) * 0.6) == math.inf


def test_changed_share_and_background_mask():
    a = np.zeros((20, 20, 3), np.uint8)
    b = a.copy()
    b[0, :10] = (0, 0, 13)             # 10 of 400 pixels move by 13 in one channel
    b[1, :10] = 9                      # a provenance-mark-sized change does not count
    assert M.changed_share(b, a) == pytest.approx(10 / 400)
    face = np.zeros((20, 20), np.float32)
    face[8:12, 8:12] = 1.0
    bg = M.background_mask(face, 3)
    assert not bg[8:12, 8:12].any() and not bg[6, 10] and bg[0, 0] and bg[10, 0]
    assert bg.sum() < 400 - 16


# -- landmarks -----------------------------------------------------------------------------------------------------

def test_landmark_error_of_a_shifted_set(lm):
    iod = M.interocular(lm)
    assert iod == pytest.approx(float(np.linalg.norm(lm[45] - lm[36])))
    assert M.landmark_error(lm, lm) == 0.0
    shifted = lm + np.array([0.1 * iod, 0.0], np.float32)
    assert M.landmark_error(shifted, lm) == pytest.approx(0.1, rel=1e-4)
    moved = lm.copy()
    moved[48:68] += np.array([0.0, 0.2 * iod], np.float32)   # only the mouth (20 of 68 points) opens
    assert M.landmark_error(moved, lm) == pytest.approx(0.2 * 20 / 68, rel=1e-4)


def test_pose_difference(lm):
    assert M.pose_difference(lm, lm) == (0.0, 0.0)
    iod = M.interocular(lm)
    turned = lm.copy()
    turned[27:36] += np.array([0.15 * iod, 0.0], np.float32)  # nose to one side: the head turns
    dyaw, dpitch = M.pose_difference(turned, lm, (572, 562))
    assert dyaw > 3.0
    assert M.pose_difference(lm, turned, (572, 562))[0] == pytest.approx(dyaw)


def test_landmark_jitter(lm):
    iod = M.interocular(lm)
    steady = [lm + np.array([3.0 * t, 1.0 * t], np.float32) for t in range(5)]   # constant speed: no jitter
    assert M.landmark_jitter(steady) == pytest.approx(0.0, abs=1e-6)
    d = np.array([0.05 * iod, 0.0], np.float32)
    shaky = [lm, lm + d, lm]                      # second difference -2d at every point
    assert M.landmark_jitter(shaky) == pytest.approx(0.1, rel=1e-3)
    assert math.isnan(M.landmark_jitter([lm, lm]))


def test_eye_opening_of_her_closed_and_open_eyes(media, lm):
    """Her clip closes her eyes around frame 90 and opens them wide around frame 162 (dlib's landmarks of the
    real frames); the man in single_face.jpg looks ahead with open eyes."""
    from support.faces import landmarks
    from support.media import decode_picks

    closed, wide = (landmarks(f)[0][0] for f in decode_picks(media / "WolfgangLanger_Pexels.mp4", [90, 162]))
    assert M.eye_opening(closed) < 0.1
    assert M.eye_opening(wide) > 0.3
    assert 0.2 < M.eye_opening(lm) < 0.45
    shut = lm.copy()                                            # upper lids lowered onto the lower ones
    shut[[37, 38, 43, 44]] = shut[[41, 40, 47, 46]]
    assert M.eye_opening(shut) == pytest.approx(0.0, abs=1e-6)
    score = M.FrameScore(number=1, dst_face=True, eyes_result=M.eye_opening(closed), eyes_dst=M.eye_opening(wide))
    assert score.to_json()["eyes_ratio"] == pytest.approx(M.eye_opening(closed) / M.eye_opening(wide))
    summary = M.summarize([score], M.Targets())
    assert summary["expression_pose"]["eyes_open_ratio_median"] < 0.3


# -- detail ------------------------------------------------------------------------------------------------------

def test_laplacian_variance_and_face_box(media, lm):
    import cv2

    img = cv2.cvtColor(cv2.imread(str(media / "single_face.jpg")), cv2.COLOR_BGR2RGB)
    box = M.face_box(lm, img.shape)
    x0, y0, x1, y1 = box
    assert 0 <= x0 < x1 <= img.shape[1] and 0 <= y0 < y1 <= img.shape[0]
    assert x0 <= lm[36, 0] and lm[45, 0] <= x1 and y0 <= lm[19, 1] and lm[57, 1] <= y1
    sharp = M.laplacian_variance(img, box)
    blurred = cv2.GaussianBlur(img, (0, 0), 2.0)
    assert M.laplacian_variance(img, box) == sharp
    assert M.ratio(M.laplacian_variance(blurred, box), sharp) < 0.2
    assert M.laplacian_variance(np.full((50, 50, 3), 90, np.uint8)) == 0.0
    # a single bright pixel in black: 3x3 Laplacian response -8 at it, 2 at the four diagonal neighbours
    dot = np.zeros((11, 11), np.uint8)
    dot[5, 5] = 100
    vals = np.zeros(121)
    vals[0], vals[1:5] = -800, 200
    assert M.laplacian_variance(dot) == pytest.approx(vals.var(), rel=1e-5)
    assert math.isnan(M.ratio(1.0, 0.0))


# -- the seam ------------------------------------------------------------------------------------------------------

def _disc(size: int = 120, r: float = 30) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= r * r).astype(np.float32)


def test_ring_masks():
    mask = _disc()
    inner, outer = M.ring_masks(mask, 3)
    inside = mask >= 0.5
    assert inner.any() and outer.any()
    assert not (inner & ~inside).any() and not (outer & inside).any() and not (inner & outer).any()
    circumference = 2 * math.pi * 30
    assert inner.sum() == pytest.approx(3 * circumference, rel=0.25)
    assert outer.sum() == pytest.approx(3 * circumference, rel=0.25)


def test_ring_delta_e():
    mask = _disc()
    grey = np.full((120, 120, 3), 128, np.uint8)
    assert M.ring_delta_e(grey, mask, 3) == pytest.approx(0.0, abs=1e-6)
    # a colour step exactly at the mask edge: Delta E is the Lab distance of the two colours
    step = grey.copy()
    step[mask >= 0.5] = (200, 120, 100)
    lab = M.to_lab(np.array([[[200, 120, 100], [128, 128, 128]]], np.uint8))[0]
    assert M.ring_delta_e(step, mask, 3) == pytest.approx(float(np.linalg.norm(lab[0] - lab[1])), rel=1e-3)
    # the same picture as result and dst: no excess
    assert M.ring_delta_e(step, mask, 3) - M.ring_delta_e(step.copy(), mask, 3) == 0.0
    # a step well inside the face does not show at the edge
    inner_step = grey.copy()
    inner_step[_disc(r=15) >= 0.5] = (200, 120, 100)
    assert M.ring_delta_e(inner_step, mask, 3) == pytest.approx(0.0, abs=1e-6)
    # a seam on one side only is not averaged away by the rest of the ring
    half = grey.copy()
    half[(mask >= 0.5) & (np.arange(120)[None, :] < 60)] = (200, 120, 100)
    assert M.ring_delta_e(half, mask, 3) > 0.4 * M.ring_delta_e(step, mask, 3)
    assert math.isnan(M.ring_delta_e(grey, np.zeros((120, 120), np.float32), 3))


# -- temporal -------------------------------------------------------------------------------------------------------

def test_pooled_flicker_reuses_temporal_flicker():
    rng = np.random.default_rng(0)
    mask = np.zeros((16, 16), np.float32)
    mask[4:12, 4:12] = 1
    dst_runs = [[rng.integers(0, 255, (16, 16, 3)).astype(np.uint8) for _ in range(3)] for _ in range(4)]
    same = [M.clip_flicker(run, mask) for run in dst_runs]
    assert M.pooled_flicker(same, same) == pytest.approx(1.0)
    # one run is exactly temporal.flicker with a reference
    res = [np.clip(f.astype(np.int16) + (i % 2) * 40, 0, 255).astype(np.uint8) for i, f in enumerate(dst_runs[0])]
    one = M.pooled_flicker([M.clip_flicker(res, mask)], [M.clip_flicker(dst_runs[0], mask)])
    assert one == pytest.approx(temporal.flicker(res, mask, reference=dst_runs[0]))
    # pooled over runs = temporal.flicker over all their frame pairs, weighted by the mask
    calm = [[np.full((16, 16, 3), 100 + 10 * (t % 2), np.uint8) for t in range(3)] for _ in range(2)]
    wild = [[np.full((16, 16, 3), 100 + 30 * (t % 2), np.uint8) for t in range(3)] for _ in range(2)]
    assert M.pooled_flicker([M.clip_flicker(r, mask) for r in wild], [M.clip_flicker(r, mask) for r in calm]) == \
        pytest.approx(3.0)
    assert math.isnan(M.pooled_flicker([], []))


# -- identity ------------------------------------------------------------------------------------------------------

def test_identity_summary_and_centroid():
    s = M.identity_summary([0.3, 0.7, 0.5], [0.8, 0.6, 0.9])
    assert s["n"] == 3
    assert s["nearer_src"] == pytest.approx(2 / 3) and s["same_as_src"] == pytest.approx(2 / 3)
    assert s["mean_src"] == pytest.approx(0.5) and s["mean_dst"] == pytest.approx(0.7667, abs=1e-4)
    empty = M.identity_summary([], [])
    assert empty["n"] == 0 and math.isnan(empty["nearer_src"])
    rng = np.random.default_rng(1)
    base = rng.normal(0, 0.1, 128).astype(np.float32)
    people = [base + rng.normal(0, 0.01, 128).astype(np.float32) for _ in range(8)]
    stranger = base + 0.3                                 # ~3.4 away: another person
    c = M.robust_centroid(people + [stranger])
    assert np.linalg.norm(c - np.mean(people, 0)) < 1e-5
    assert M.robust_centroid([base]).shape == (128,)


# -- per frame, summary ----------------------------------------------------------------------------------------------

def _good(number: int) -> M.FrameScore:
    return M.FrameScore(number=number, dst_face=True, result_face="detected", swapped=True, d_src=0.35, d_dst=0.8,
                        landmark_error=0.03, yaw_diff=1.0, pitch_diff=1.0, background_psnr=50.0,
                        background_sse=float(100 * 255 ** 2 / 10 ** 5.0), background_n=100, background_changed=0.0,
                        seam_result=5.0, seam_dst=4.5, detail_result=80.0, detail_dst=100.0, flicker_result=1.0,
                        flicker_dst=1.0, flicker_weight=10.0, jitter_result=0.01, jitter_dst=0.01)


def test_badness_summary_and_worst_frames():
    t = M.Targets()
    good = [_good(n) for n in (1, 5, 9)]
    for s in good:
        s.badness, s.problems = M.frame_badness(s, t)
        assert s.badness == 0.0 and s.problems == []
    summary = M.summarize(good, t)
    assert summary["pass"] is True
    assert summary["blending"]["background_psnr_db"] == pytest.approx(50.0)
    assert summary["identity"]["nearer_src"] == 1.0 and summary["detail"]["ratio_to_dst_median"] == pytest.approx(0.8)
    assert summary["temporal"]["flicker_ratio"] == pytest.approx(1.0)

    missed = _good(13)
    missed.swapped, missed.d_src, missed.d_dst, missed.landmark_error = False, 0.8, 0.2, 0.10
    blurry = _good(17)
    blurry.detail_result = 20.0
    for s in (missed, blurry):
        s.badness, s.problems = M.frame_badness(s, t)
    assert missed.badness > blurry.badness > 0
    assert any("not swapped" in p for p in missed.problems) and any("detail" in p for p in blurry.problems)
    worst = M.worst_frames(good + [blurry, missed], 10)
    assert [s.number for s in worst] == [13, 17]
    summary = M.summarize(good + [blurry, missed], t)
    assert summary["pass"] is False
    assert summary["identity"]["nearer_src"] == pytest.approx(0.8)
    checks = {c["name"].split(" ")[0]: c["pass"] for c in summary["checks"]}
    assert checks["identity"] is False and checks["68-landmark"] is True
    assert M.summarize([], t)["pass"] is None
    js = missed.to_json()
    assert js["nearer_src"] is False and js["detail_ratio"] == pytest.approx(0.8)
    assert M.clean({"a": float("inf"), "b": [float("nan"), np.float32(1.5)]}) == {"a": None, "b": [None, 1.5]}
