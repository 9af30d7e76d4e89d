"""Super resolution: the face-detail network learned from src faces beats bicubic on held-back src faces."""

from __future__ import annotations

import numpy as np
import pytest

from facedouble.config import MergeConfig
from facedouble.faces import align, container
from facedouble.merge import merger, superres
from support.faces import landmarks
from support.media import decode
from support.swappers import IdentitySwapper


@pytest.fixture(scope="module")
def src_faces(media):
    """32 aligned faces of the woman (the src of the sample pair), 192 px."""
    out = []
    for img in decode(media / "WolfgangLanger_Pexels.mp4")[::14][:32]:
        for lm, _ in landmarks(img)[:1]:
            out.append(align.warp_to_face(img, align.face_matrix(lm, "whole-face", 192), 192))
    assert len(out) >= 24
    return out


@pytest.mark.slow  # ~25 s on 2 idle cores (800 steps: the 64 x 6 network needs more than the first 32 x 3 did)
def test_face_detail_beats_bicubic_on_held_back_faces(src_faces):
    detail = superres.train_face_detail(src_faces, 128, steps=800, holdout=0.2, seed=0)
    m = detail.metrics
    assert m["test_faces"] >= 5 and m["steps"] == 800
    assert m["psnr_net"] > m["psnr_bicubic"] + 0.3, m
    assert m["sharpness_bicubic"] < m["sharpness_net"] < 1.2 * m["sharpness_truth"], m
    up = detail.upscale([np.zeros((40, 40, 3), np.float32) + 0.5])[0]
    assert up.shape == (80, 80, 3) and abs(float(up.mean()) - 0.5) < 0.05


def test_save_load_and_merge_with_super_resolution(src_faces, dst_ws, unmarked, tmp_path):
    ws = dst_ws
    detail = superres.train_face_detail(src_faces[:6], 128, steps=20)
    path = detail.save(superres.detail_path(ws.model, 128))
    again = superres.FaceDetail.load(path)
    x = [src_faces[0][::3, ::3].astype(np.float32) / 255.0]
    assert np.allclose(again.upscale(x)[0], detail.upscale(x)[0], atol=1e-6)
    # the merge picks the saved network up (no training) and puts a 128 px face from a 64 px model
    s = merger.merge(ws, MergeConfig(mode="overlay", mask="dst", super_resolution=True), swapper=IdentitySwapper(64))
    assert s.written == len(ws.frame_files("dst"))


def test_super_resolution_trains_from_data_src_when_missing(dst_ws, src_faces, monkeypatch):
    ws = dst_ws
    for i, face in enumerate(src_faces[:4]):
        rec = container.FaceRecord(face_type="whole-face", size=192, landmarks=np.zeros((68, 2), np.float32),
                              source_landmarks=np.zeros((68, 2), np.float32), matrix=np.eye(2, 3),
                              source_filename=f"{i + 1:06d}.png", source_rect=(0, 0, 1, 1))
        container.write_face(ws.aligned("src") / f"{i + 1:06d}_0.jpg", face, rec)
    real = superres.train_face_detail
    monkeypatch.setattr(superres, "train_face_detail", lambda faces, size, **kw: real(faces, size, steps=5, **kw))
    detail = merger.load_face_detail(ws, MergeConfig(super_resolution=True), 64)
    assert detail.size == 128 and superres.detail_path(ws.model, 128).exists()


@pytest.fixture(scope="module")
def src_records(media):
    """(face, record) pairs of the woman: 192 px whole-face crops with their aligned landmarks."""
    out = []
    for img in decode(media / "WolfgangLanger_Pexels.mp4")[::14][:8]:
        for lm, _ in landmarks(img)[:1]:
            m = align.face_matrix(lm, "whole-face", 192)
            rec = container.FaceRecord(face_type="whole-face", size=192, landmarks=align.transform_points(lm, m),
                                  source_landmarks=np.asarray(lm, np.float32), matrix=m,
                                  source_filename=f"{len(out) + 1:06d}.png", source_rect=(0, 0, 1, 1))
            out.append((align.warp_to_face(img, m, 192), rec))
    assert len(out) >= 6
    return out


def test_detail_pairs_are_the_models_reconstructions_of_the_same_crops(dst_ws, src_records):
    """The face-detail network learns (model's reconstruction of a src face -> that face at twice the side):
    the two must be the same crop, the input at the model's resolution and face type."""
    import cv2

    ws = dst_ws
    for i, (face, rec) in enumerate(src_records):
        container.write_face(ws.aligned("src") / f"{i + 1:06d}_0.png", face, rec)
    targets, inputs = merger.detail_pairs(ws, IdentitySwapper(64, face_type="full"), 128)
    assert len(targets) == len(inputs) == len(src_records)
    for t, x, (face, rec) in zip(targets, inputs, src_records):
        assert t.shape == (128, 128, 3) and t.dtype == np.uint8 and x.shape == (64, 64, 3)
        down = cv2.resize(t, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        assert float(np.abs(down - x).mean()) < 0.03  # the same face, same place (an identity model)
        # the model's "full" crop of the face file, not the whole-face file itself
        full = align.warp_to_face(face, align.face_matrix(rec.landmarks, "full", 128), 128)
        assert float(np.abs(full.astype(np.float32) - t).mean()) < 1.0
        assert float(np.abs(cv2.resize(face, (128, 128)).astype(np.float32) - t).mean()) > 5


def test_face_detail_learns_to_sharpen_soft_inputs(src_faces):
    """Given soft inputs (as a young model's reconstructions are), the network learns to give the sharp faces
    back: better than bicubic from the same inputs, and sharper."""
    import cv2

    hr = [cv2.resize(f, (96, 96), interpolation=cv2.INTER_AREA) for f in src_faces]
    soft = [cv2.GaussianBlur(cv2.resize(f, (48, 48), interpolation=cv2.INTER_AREA), (0, 0), 1.0) for f in hr]
    detail = superres.train_face_detail(hr, 96, inputs=soft, steps=300, holdout=0.2, patch=48, seed=0)
    m = detail.metrics
    assert m["psnr_net"] > m["psnr_bicubic"] + 0.2, m
    assert m["sharpness_net"] > 1.5 * m["sharpness_bicubic"], m


def test_detail_target_keeps_the_inputs_colour_and_the_real_faces_detail(src_faces):
    """The network is taught the real face's detail over its input's own colour: a target with the real face's
    colour would teach it to repaint every swapped face (it made them paler, measured), one without the real
    detail would teach it nothing."""
    import cv2

    face = cv2.resize(src_faces[0], (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    low = cv2.GaussianBlur(np.clip(superres.downscale(face) * [1.0, 0.85, 0.8] + 0.08, 0, 1).astype(np.float32),
                           (0, 0), 1.0)
    target = superres.detail_target(face, low)
    assert target.shape == face.shape and target.dtype == np.float32
    assert np.abs(target.mean((0, 1)) - low.mean((0, 1))).max() < 0.01          # the input's colour
    assert np.abs(face.mean((0, 1)) - low.mean((0, 1))).max() > 0.05            # (which is not the face's)
    up = superres.bicubic_up(low)
    assert superres.sharpness(target) > 0.7 * superres.sharpness(face) > 2 * superres.sharpness(up)


class _DarkEdgeModel(IdentitySwapper):
    """Stand-in for a young model: the face, darkening towards the edge of its learned (ellipse) mask, as
    liae192's faces do where its mask ends."""

    def __init__(self):
        super().__init__(96, "whole-face", learn_mask=True)

    def swap_numpy(self, faces):
        import cv2

        preds, masks = [], []
        for f in faces:
            s = f.shape[0]
            m = np.zeros((s, s), np.float32)
            cv2.ellipse(m, (s // 2, s // 2), (int(s * 0.3), int(s * 0.36)), 0, 0, 360, 1.0, -1)
            inner = cv2.GaussianBlur(cv2.erode(m, np.ones((3, 3), np.uint8), iterations=s // 24), (0, 0), s / 48)
            preds.append((f.astype(np.float32) / 255.0 * (0.35 + 0.65 * inner[..., None])).astype(np.float32))
            masks.append(m)
        return preds, masks


def test_a_super_resolved_face_is_blended_in_the_colour_of_the_models_face(dst_ws):
    """Super resolution doubles the face's side; the Poisson blend must still give it the colour it gives the
    model's own face (solved at the large size, its fixed-width rims let the dark face edge in and the face
    came out 15-20 levels brighter), and the large face's detail must survive the blend."""
    from facedouble.imagefile import read_rgb
    from facedouble.merge import compose

    class Bicubic:  # a face-detail network that adds nothing: any change of colour is the blend's
        def upscale(self, faces):
            return [superres.bicubic_up(f) for f in faces]

    class Sharpen(Bicubic):
        def upscale(self, faces):
            import cv2

            ups = super().upscale(faces)
            return [np.clip(2 * u - cv2.GaussianBlur(u, (0, 0), 1.5), 0, 1) for u in ups]

    ws, model = dst_ws, _DarkEdgeModel()
    path = merger.find_frame(ws, 5)
    frame, records = read_rgb(path), merger.frame_records(ws)[path.name]
    x0, y0, x1, y1 = (int(v) for v in (*records[0].source_landmarks.min(0), *records[0].source_landmarks.max(0)))
    inner = (slice(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4), slice(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4))

    def merged(detail):
        cfg = MergeConfig(mode="seamless", mask="learned", super_resolution=detail is not None)
        return compose.merge_frame(frame, records, model, cfg, detail=detail).image[inner].astype(np.float32)

    plain, large, sharp = merged(None), merged(Bicubic()), merged(Sharpen())
    assert np.abs(large.mean((0, 1)) - plain.mean((0, 1))).max() < 2.0
    assert np.abs(sharp.mean((0, 1)) - plain.mean((0, 1))).max() < 2.0
    assert superres.sharpness(sharp / 255) > 1.3 * superres.sharpness(large / 255)
