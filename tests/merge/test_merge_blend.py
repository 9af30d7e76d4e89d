"""Blending geometry and Poisson blending."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facedouble.faces import align
from facedouble.merge import blend as B
from facedouble.merge import mask as K
from facedouble.faces import regions
from support.faces import landmarks
from support.media import decode


@pytest.fixture(scope="module")
def frame_and_landmarks(media):
    frame = decode(media / "single_face.mp4", limit=1)[0]
    lm, _ = landmarks(frame)[0]
    return frame, lm


@pytest.mark.parametrize("size", [256, 512])
def test_warp_to_face_and_back_returns_the_frame(frame_and_landmarks, size):
    frame, lm = frame_and_landmarks
    m = align.face_matrix(lm, "whole-face", size)
    face = align.warp_to_face(frame, m, size).astype(np.float32) / 255.0
    ones = np.ones((size, size), np.float32)
    out, roi, mask = B.composite(np.zeros_like(frame), face, m, ones, m)
    inside = np.zeros(frame.shape[:2], bool)
    ys, xs = roi.slices()
    inside[ys, xs] = cv2.erode((mask > 0.999).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    err = np.abs(out.astype(np.float64) - frame)[inside]
    psnr = 10 * np.log10(255.0 ** 2 / np.mean(err ** 2))
    # the crop is larger than the face here, so resampling costs a little; sub-pixel, no shift
    assert psnr > (33 if size == 256 else 38), psnr
    assert err.mean() < 2.0
    assert np.all(out[~(np.pad(np.ones((roi.height, roi.width), bool), ((roi.y0, frame.shape[0] - roi.y1),
                                                                        (roi.x0, frame.shape[1] - roi.x1))))] == 0)


def test_composite_touches_only_the_mask(frame_and_landmarks):
    frame, lm = frame_and_landmarks
    m = align.face_matrix(lm, "whole-face", 128)
    face = np.zeros((128, 128, 3), np.float32)
    mask = regions.hull_mask(align.transform_points(lm, align.face_matrix(lm, "whole-face", 256)), (256, 256))
    m256 = B.resize_matrix(m, 128, 256)
    out, roi, m_roi = B.composite(frame.copy(), face, m, mask * K.edge_feather(256), m256)
    full = np.zeros(frame.shape[:2], np.float32)
    full[roi.slices()] = m_roi
    assert np.array_equal(out[full == 0], frame[full == 0])  # exactly the frame where the mask is 0
    assert out[full > 0.99].mean() < 2  # black face where it is 1
    hull_frame = regions.hull_mask(lm, frame.shape[:2])
    assert np.abs((full > 0.5).astype(float) - (hull_frame > 0.5)).mean() < 0.005  # mask lands on the face


def test_face_roi_is_clipped_and_scale_matrix_scales(frame_and_landmarks):
    frame, lm = frame_and_landmarks
    m = align.face_matrix(lm, "head", 256)
    roi = B.face_roi(m, 256, frame.shape)
    assert 0 <= roi.x0 < roi.x1 <= frame.shape[1] and 0 <= roi.y0 < roi.y1 <= frame.shape[0]
    big = B.scale_matrix(m, 256, 20)
    assert align.matrix_scale(m) / align.matrix_scale(big) == pytest.approx(1.2)
    centre = align.transform_points(np.array([[128.0, 128.0]]), align.invert(m))
    assert np.allclose(align.transform_points(np.array([[128.0, 128.0]]), align.invert(big)), centre, atol=1e-6)


def _poisson_case(frame, lm, kind):
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lm).astype(np.int32)), 255)
    f = frame.astype(np.float32)
    if kind == "gain":
        src = np.clip(f * 1.1 + 5, 0, 255)
    else:  # like a model's output: softer, with a colour cast
        src = np.clip(cv2.GaussianBlur(f, (0, 0), 2) * [1.0, 0.9, 0.85] + [10, 0, -5], 0, 255)
    return src.astype(np.uint8), mask


@pytest.mark.parametrize("kind", ["gain", "blur+cast"])
def test_seamless_matches_opencv_seamlessclone(frame_and_landmarks, kind):
    """Our Poisson blend solves OpenCV's NORMAL_CLONE system. OpenCV 5.0's own seamlessClone alternates
    between two results from call to call (one of them far off), so it is called twice and the closer result
    is compared; ours is identical on every call."""
    frame, lm = frame_and_landmarks
    src, mask = _poisson_case(frame, lm, kind)
    x, y, w, h = cv2.boundingRect(mask)
    ours = B.seamless(src, frame, mask)
    assert np.array_equal(ours, B.seamless(src, frame, mask))
    refs = [cv2.seamlessClone(src, frame, mask, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE) for _ in range(2)]
    diffs = [np.abs(r.astype(int) - ours) for r in refs]
    best = min(diffs, key=lambda d: d.mean())
    assert best.mean() < 1.5, [d.mean() for d in diffs]
    assert np.percentile(best, 99) <= 6
    outside_box = np.ones(frame.shape[:2], bool)
    outside_box[y:y + h, x:x + w] = False
    assert np.array_equal(ours[outside_box], frame[outside_box])


def test_poisson_solve_satisfies_its_equations(frame_and_landmarks):
    frame, lm = frame_and_landmarks
    src, mask = _poisson_case(frame, lm, "blur+cast")
    x, y, w, h = cv2.boundingRect(mask)
    s, d, mk = src[y:y + h, x:x + w], frame[y:y + h, x:x + w], mask[y:y + h, x:x + w]
    out = B.poisson_solve(s, d, mk)
    # guidance: source gradients inside the (3 px eroded) mask, destination gradients outside
    m = cv2.erode(mk, np.ones((3, 3), np.uint8), iterations=3).astype(np.float32)[..., None] / 255
    sf, df = s.astype(np.float32) * (mk[..., None] > 0), d.astype(np.float32)
    diff = lambda img, k: cv2.filter2D(img, cv2.CV_32F, np.array(k, np.float32))  # noqa: E731
    gx = diff(sf, [[0, -1, 1]]) * m + diff(df, [[0, -1, 1]]) * (1 - m)
    gy = diff(sf, [[0], [-1], [1]]) * m + diff(df, [[0], [-1], [1]]) * (1 - m)
    div = diff(gx, [[-1, 1, 0]]) + diff(gy, [[-1], [1], [0]])
    lap = cv2.Laplacian(out, cv2.CV_32F)
    assert np.abs(lap - div)[1:-1, 1:-1].max() < 0.05
    assert np.array_equal(out[0], d[0].astype(np.float32)) and np.array_equal(out[:, -1], d[:, -1].astype(np.float32))
    # the blend takes the source's colour inside (no cast left at the boundary)
    inner = cv2.erode(mk, np.ones((15, 15), np.uint8)) > 0
    assert abs(out[inner].mean() - d[inner].mean()) < abs(s[inner].astype(float).mean() - d[inner].mean())


def test_seamless_without_mask_returns_dst(frame_and_landmarks):
    frame, _ = frame_and_landmarks
    assert np.array_equal(B.seamless(frame[::-1].copy(), frame, np.zeros(frame.shape[:2], np.float32)), frame)
