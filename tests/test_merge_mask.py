"""Masks: erode/dilate are monotone, blur softens, sizes are relative to the face, mesh and hand masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facedouble.faces import align
from facedouble.merge import mask as K
from test_merge_support import decode, landmarks


@pytest.fixture(scope="module")
def face(media):
    """A real aligned face (256 px whole-face), its landmarks and its dst hull mask."""
    img = cv2.cvtColor(cv2.imread(str(media / "single_face.jpg")), cv2.COLOR_BGR2RGB)
    lm, _ = landmarks(img)[0]
    m = align.face_matrix(lm, "whole-face", 256)
    crop = align.warp_to_face(img, m, 256)
    lm_f = align.transform_points(lm, m)
    return crop, lm_f, K.hull_mask(lm_f, (256, 256), forehead=0.25)


def _softness(mask):
    """Fraction of the pixels that are neither (nearly) 0 nor 1."""
    return float(((mask > 0.02) & (mask < 0.98)).mean())


def test_erode_and_dilate_are_monotone(face):
    _, _, hull = face
    face_px = 256 / 1.3
    values = [-200, -100, -40, -10, 0, 10, 40, 100, 200]
    masks = [K.modify_mask(hull, e, 0, face_px) for e in values]
    areas = [m.sum() for m in masks]
    assert all(a > b for a, b in zip(areas, areas[1:])), areas
    for bigger, smaller in zip(masks, masks[1:]):
        assert np.all(smaller <= bigger + 1e-6)  # pointwise, not only in area
    # 100 moves the edge by about 10% of the face size
    radius = lambda m: np.sqrt(m.sum() / np.pi)  # noqa: E731
    assert radius(masks[values.index(100)]) == pytest.approx(radius(hull) - 0.1 * face_px, rel=0.15)


def test_blur_softens_monotonically_and_negative_blur_hardens(face):
    _, _, hull = face
    face_px = 256 / 1.3
    soft = [_softness(K.modify_mask(hull, 0, b, face_px)) for b in (0, 20, 60, 120, 200)]
    assert all(a < b for a, b in zip(soft, soft[1:])), soft
    blurred = K.modify_mask(hull, 0, 100, face_px)
    tv = lambda m: np.abs(np.diff(m, axis=0)).max() + np.abs(np.diff(m, axis=1)).max()  # noqa: E731
    assert tv(blurred) < 0.2 * tv(hull)  # no hard step left
    assert abs(blurred.sum() - hull.sum()) < 0.03 * hull.sum()  # softens the edge, keeps the size
    gentle = K.blur_mask(hull, 8)
    assert _softness(K.modify_mask(gentle, 0, -100, face_px)) < _softness(gentle)


def test_erode_blur_are_relative_to_face_size(face):
    _, lm, _ = face
    small = K.modify_mask(K.hull_mask(lm / 2, (128, 128)), 60, 60, 128 / 1.3)
    big = K.modify_mask(K.hull_mask(lm, (256, 256)), 60, 60, 256 / 1.3)
    down = cv2.resize(big, (128, 128), interpolation=cv2.INTER_AREA)
    assert np.abs(down - small).mean() < 0.01


def test_edge_feather_is_zero_at_the_crop_edge():
    f = K.edge_feather(128)
    assert f.shape == (128, 128)
    assert f[0].max() < 0.5 and f[:, -1].max() < 0.5 and f[64, 64] == 1.0
    assert np.all(np.diff(f[64, :64]) >= 0)


def test_mesh_mask_follows_the_face(face):
    crop, _, hull = face
    pts = K.face_mesh(crop)
    assert pts is not None and pts.shape == (478, 2)
    mesh = K.mesh_mask(pts, (256, 256))
    inter = np.minimum(mesh, hull).sum()
    union = np.maximum(mesh, hull).sum()
    assert inter / union > 0.7  # the same face, different outlines (the mesh goes up to the hairline)
    assert K.face_mesh(np.zeros((256, 256, 3), np.uint8)) is None


def test_combine_masks():
    a = np.full((4, 4), 0.5, np.float32)
    b = np.full((4, 4), 0.4, np.float32)
    assert np.allclose(K.combine("learned-dst", learned=a, dst=b), 0.2)
    assert np.allclose(K.combine("mesh-prd-dst", mesh_prd=a, mesh_dst=b), 0.2)
    assert np.allclose(K.combine("dst", dst=b), 0.4)
    with pytest.raises(ValueError):
        K.combine("mesh-dst", dst=b)


def test_hands_are_tracked_and_kept_out_of_the_mask(media):
    """The woman's clip: a hand comes up over the mouth from frame ~60; tracking finds it."""
    frames = decode(media / "WolfgangLanger_Pexels.mp4", limit=110)[40:110]
    tracker = K.HandTracker(video=True)
    found = [tracker(f) for f in frames]
    tracker.close()
    assert sum(1 for h in found[:15] if h) == 0  # frames 40-54: no hand
    assert sum(1 for h in found[30:] if h) >= 35  # frames 70-109: hand over the mouth
    k = 75 - 40  # frame 75: fingers over the mouth, eyes free
    img = frames[k]
    lm, _ = landmarks(img)[0]
    m = align.face_matrix(lm, "whole-face", 256)
    hand = K.hand_mask(found[k], m, 256)
    lm_f = align.transform_points(lm, m)
    mouth = np.round(lm_f[48:68].mean(0)).astype(int)
    assert hand[mouth[1], mouth[0]] > 0.9  # the hand covers the mouth
    for eye in (lm_f[36:42].mean(0), lm_f[42:48].mean(0)):
        assert hand[int(eye[1]), int(eye[0])] < 0.1  # not the eyes


def test_skin_mask_keeps_skin_and_drops_hair(face):
    crop, lm, hull = face
    sample = K.points_hull_mask(lm[[2, 3, 4, 31, 33, 35, 12, 13, 14, 29]], (256, 256))
    skin = K.skin_mask(crop, sample)
    cheeks = sample > 0.5
    assert skin[cheeks].mean() > 0.9
    top = np.zeros((256, 256), bool)
    top[:20, 60:200] = True  # above the forehead of a whole-face crop: his black hair
    assert skin[top].mean() < 0.2
