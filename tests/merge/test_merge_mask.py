"""Masks: erode/dilate are monotone, blur softens, sizes are relative to the face, mesh and hand masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facedouble.faces import align
from facedouble.merge import mask as K
from facedouble.faces import mesh as mesh_net, regions
from support.faces import landmarks
from support.media import decode


@pytest.fixture(scope="module")
def face(media):
    """A real aligned face (256 px whole-face), its landmarks and its dst hull mask."""
    img = cv2.cvtColor(cv2.imread(str(media / "single_face.jpg")), cv2.COLOR_BGR2RGB)
    lm, _ = landmarks(img)[0]
    m = align.face_matrix(lm, "whole-face", 256)
    crop = align.warp_to_face(img, m, 256)
    lm_f = align.transform_points(lm, m)
    return crop, lm_f, regions.hull_mask(lm_f, (256, 256), forehead=0.25)


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
    gentle = regions.blur_mask(hull, 8)
    assert _softness(K.modify_mask(gentle, 0, -100, face_px)) < _softness(gentle)


def test_erode_blur_are_relative_to_face_size(face):
    _, lm, _ = face
    small = K.modify_mask(regions.hull_mask(lm / 2, (128, 128)), 60, 60, 128 / 1.3)
    big = K.modify_mask(regions.hull_mask(lm, (256, 256)), 60, 60, 256 / 1.3)
    down = cv2.resize(big, (128, 128), interpolation=cv2.INTER_AREA)
    assert np.abs(down - small).mean() < 0.01


def test_edge_feather_is_zero_at_the_crop_edge():
    f = K.edge_feather(128)
    assert f.shape == (128, 128)
    assert f[0].max() < 0.5 and f[:, -1].max() < 0.5 and f[64, 64] == 1.0
    assert np.all(np.diff(f[64, :64]) >= 0)


def test_mesh_mask_follows_the_face(face):
    crop, _, hull = face
    pts = mesh_net.face_mesh(crop)
    assert pts is not None and pts.shape == (478, 2)
    mesh = regions.mesh_mask(pts, (256, 256))
    inter = np.minimum(mesh, hull).sum()
    union = np.maximum(mesh, hull).sum()
    assert inter / union > 0.7  # the same face, different outlines (the mesh goes up to the hairline)
    assert mesh_net.face_mesh(np.zeros((256, 256, 3), np.uint8)) is None


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
    tracker = mesh_net.HandTracker(video=True)
    found = [tracker(f) for f in frames]
    tracker.close()
    assert sum(1 for h in found[:15] if h) == 0  # frames 40-54: no hand
    assert sum(1 for h in found[30:] if h) >= 35  # frames 70-109: hand over the mouth
    k = 75 - 40  # frame 75: fingers over the mouth, eyes free
    img = frames[k]
    lm, _ = landmarks(img)[0]
    m = align.face_matrix(lm, "whole-face", 256)
    hand = regions.hand_mask(found[k], m, 256)
    lm_f = align.transform_points(lm, m)
    mouth = np.round(lm_f[48:68].mean(0)).astype(int)
    assert hand[mouth[1], mouth[0]] > 0.9  # the hand covers the mouth
    for eye in (lm_f[36:42].mean(0), lm_f[42:48].mean(0)):
        assert hand[int(eye[1]), int(eye[0])] < 0.1  # not the eyes


def test_skin_mask_keeps_skin_and_drops_hair(face):
    crop, lm, hull = face
    sample = regions.points_hull_mask(lm[[2, 3, 4, 31, 33, 35, 12, 13, 14, 29]], (256, 256))
    skin = K.skin_mask(crop, sample)
    cheeks = sample > 0.5
    assert skin[cheeks].mean() > 0.9
    top = np.zeros((256, 256), bool)
    top[:20, 60:200] = True  # above the forehead of a whole-face crop: his black hair
    assert skin[top].mean() < 0.2


# -- each mask mode gives its own mask (compose.face_masks on a real frame with a hand over the face) -----------

@pytest.fixture(scope="module")
def hand_frame(media):
    """Image_with_alpha.png: a man with his hand over his forehead and one eye. The frame, its 68 landmarks,
    the hands found in it, a whole-face crop of it (128 px, as a model's) and the 256 px mask geometry."""
    from facedouble.merge import blend as B

    img = cv2.imread(str(media / "Image_with_alpha.png"), cv2.IMREAD_UNCHANGED)
    rgb = np.ascontiguousarray(cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB))
    (lm, _), = landmarks(rgb)
    tracker = mesh_net.HandTracker(video=False)
    hands = tracker(rgb)
    tracker.close()
    assert len(hands) == 1
    m_in = align.face_matrix(lm, "whole-face", 128)
    crop = align.warp_to_face(rgb, m_in, 128)
    return rgb, lm, hands, crop.astype(np.float32) / 255.0, B.resize_matrix(m_in, 128, 256)


def _masks(hand_frame, mode, *, learned=None, hands=None, lm=None, warn=None, state=None):
    from facedouble.config import MergeConfig
    from facedouble.merge import compose

    rgb, lm0, hands0, pred, m_mask = hand_frame
    return compose.face_masks(rgb, lm0 if lm is None else lm, pred, learned, m_mask, 256, "whole-face",
                             MergeConfig(mask=mode), state or compose.MergeState(), warn,
                             hands0 if hands is None else hands)


def _hand_pixels(hand_frame, hull):
    """Mask pixels on the hand's joints that the dst hull covers fully (the forehead and the eye)."""
    _, _, hands, _, m_mask = hand_frame
    pts = np.round(align.transform_points(hands[0], m_mask)).astype(int)
    pts = pts[(pts >= 0).all(1) & (pts < 256).all(1)]
    return np.array([p for p in pts if hull[p[1], p[0]] >= 0.99])


def _face_pixels(hand_frame):
    """Mask pixels of the nose tip, the mouth centre and the chin's middle (never under the hand)."""
    _, lm, _, _, m_mask = hand_frame
    lm_s = align.transform_points(lm, m_mask)
    pts = [lm_s[30], lm_s[48:68].mean(0), (lm_s[8] + lm_s[57]) / 2]
    return np.round(pts).astype(int)


def test_mesh_masks_leave_the_hand_out_and_the_hull_keeps_it(hand_frame):
    hull, _ = _masks(hand_frame, "dst")
    on_hand = _hand_pixels(hand_frame, hull)
    assert len(on_hand) >= 5, on_hand  # the fingers lie across the forehead, inside the hull
    assert np.all(hull[on_hand[:, 1], on_hand[:, 0]] >= 0.99)
    face_px = _face_pixels(hand_frame)
    ones = np.ones((128, 128), np.float32)
    for mode in ("mesh-dst", "mesh-prd-dst", "learned-mesh-dst"):
        mask, parts = _masks(hand_frame, mode, learned=ones)
        assert "hands" in parts, mode
        assert np.all(mask[on_hand[:, 1], on_hand[:, 0]] < 0.02), (mode, mask[on_hand[:, 1], on_hand[:, 0]])
        assert np.all(mask[face_px[:, 1], face_px[:, 0]] > 0.98), mode  # the visible face stays in
    # the hull and the model's own face mesh (mesh-prd) do not know about hands
    mesh_prd, _ = _masks(hand_frame, "mesh-prd")
    assert np.mean(mesh_prd[on_hand[:, 1], on_hand[:, 0]]) > 0.5


def test_mesh_dst_is_the_dst_face_mesh_not_the_hull(hand_frame):
    """Without hands, mesh-dst is exactly the face oval of the mesh found on the dst crop, which is not the
    landmark hull (so a silent fallback to the hull would fail here)."""
    from facedouble.merge import blend as B

    rgb, _, _, _, m_mask = hand_frame
    warnings = []
    mask, parts = _masks(hand_frame, "mesh-dst", hands=[], warn=warnings.append)
    pts = mesh_net.face_mesh(align.warp_to_face(rgb, B.resize_matrix(m_mask, 256, 256), 256))
    assert pts is not None
    assert np.abs(mask - regions.mesh_mask(pts, (256, 256))).max() < 1e-6
    hull, _ = _masks(hand_frame, "dst")
    assert np.abs(mask - hull).mean() > 0.03  # the two outlines differ visibly on this face
    assert warnings == [] and "dst" not in parts


def test_learned_modes_follow_the_model_mask(hand_frame):
    left = np.zeros((128, 128), np.float32)
    left[:, :64] = 1.0
    right = 1.0 - left
    hull, _ = _masks(hand_frame, "dst")
    for known in (left, right):
        up = cv2.resize(known, (256, 256), interpolation=cv2.INTER_LINEAR)
        learned, _ = _masks(hand_frame, "learned", learned=known)
        assert np.abs(learned - up).max() < 1e-6
        both, _ = _masks(hand_frame, "learned-dst", learned=known)
        assert np.abs(both - up * hull).max() < 1e-6
        mesh_part, _ = _masks(hand_frame, "mesh-dst")
        lmd, _ = _masks(hand_frame, "learned-mesh-dst", learned=known)
        assert np.abs(lmd - up * mesh_part).max() < 1e-5
    a, _ = _masks(hand_frame, "learned", learned=left)
    assert a[:, :120].min() == 1.0 and a[:, 136:].max() == 0.0


def test_dst_mask_follows_the_landmarks(hand_frame):
    """Widen the jaw in the landmarks (same crop): the hull grows with it; the mesh (from pixels) does not."""
    _, lm, _, _, m_mask = hand_frame
    wide = np.asarray(lm, np.float32).copy()
    centre_x = wide[27:36, 0].mean()
    wide[:17, 0] = centre_x + (wide[:17, 0] - centre_x) * 1.2
    hull, _ = _masks(hand_frame, "dst")
    hull_wide, _ = _masks(hand_frame, "dst", lm=wide)
    assert hull_wide.sum() > 1.1 * hull.sum()
    assert ((hull - hull_wide) > 0.02).sum() < 0.005 * hull.sum()  # holds the old hull (but for edge pixels)
    for cheek in (4, 12):  # just outside the jaw line, on both sides
        beside = lm[cheek] + np.array([(lm[cheek, 0] - centre_x) * 0.1, 0.0], np.float32)
        out = np.round(align.transform_points(beside[None], m_mask)[0]).astype(int)
        assert hull[out[1], out[0]] == 0.0 and hull_wide[out[1], out[0]] == 1.0, cheek
    mesh, _ = _masks(hand_frame, "mesh-dst", hands=[])
    mesh_wide, _ = _masks(hand_frame, "mesh-dst", hands=[], lm=wide)
    assert np.abs(mesh - mesh_wide).max() < 1e-6


def test_mask_fallbacks_are_reported(hand_frame, monkeypatch):
    from facedouble.merge import compose

    _, _, hands, _, _ = hand_frame
    hull, _ = _masks(hand_frame, "dst")
    # no learned mask in the model
    warnings, state = [], compose.MergeState()
    mask, _ = _masks(hand_frame, "learned", learned=None, warn=warnings.append, state=state)
    assert np.array_equal(mask, hull)
    assert len(warnings) == 1 and "no learned mask" in warnings[0] and "hull" in warnings[0]
    assert state.fallbacks == {"The model has no learned mask (--mask learned)": 1}
    # the mesh finds no face: the hull (less the hand), reported once per run, counted per face
    monkeypatch.setattr(mesh_net, "face_mesh", lambda image, **kw: None)
    warnings, state = [], compose.MergeState()
    for _ in range(3):
        mask, parts = _masks(hand_frame, "mesh-dst", warn=warnings.append, state=state)
    assert np.abs(mask - hull * (1 - parts["hands"])).max() < 1e-6
    assert len(warnings) == 1 and "face mesh found no face" in warnings[0]
    assert state.fallbacks == {"The face mesh found no face in a dst crop": 3}


def test_the_merger_reports_a_fallback_per_frame_and_per_run(hand_frame, tmp_path):
    """merge_frame returns what fell back; the stage warns once, counts the faces and writes the count to
    merge_run.json (a model without a learned mask, asked for --mask learned)."""
    import json
    from types import SimpleNamespace

    from facedouble.config import MergeConfig
    from facedouble.merge import compose, merger
    from facedouble.progress import Reporter
    from facedouble.workspace import Workspace
    from support.swappers import IdentitySwapper
    from support.workspaces import write_dst_workspace

    rgb, lm, _, _, _ = hand_frame
    what = "The model has no learned mask (--mask learned)"
    records = [SimpleNamespace(source_landmarks=lm)]
    out = compose.merge_frame(rgb, records, IdentitySwapper(128), MergeConfig(mode="overlay", mask="learned"))
    assert out.fallbacks == (what,)
    ok = compose.merge_frame(rgb, records, IdentitySwapper(128), MergeConfig(mode="overlay", mask="dst"))
    assert ok.fallbacks == ()
    small = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
    ws = Workspace(tmp_path / "ws")
    write_dst_workspace(ws, [small, small])
    rep = Reporter()
    summary = merger.merge(ws, MergeConfig(mode="overlay", mask="learned", smooth_frames=0), swapper=IdentitySwapper(128),
                           reporter=rep)
    assert summary.fallbacks == {what: 2}
    assert sum(1 for m in rep.messages if m.startswith("warning: ") and what in m) == 1
    run = json.loads((ws.frames("dst") / merger.RUN_NAME).read_text())
    assert run["last"]["fallbacks"] == {what: 2}
