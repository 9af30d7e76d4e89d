"""Super resolution: the face-detail network learned from src faces beats bicubic on held-back src faces."""

from __future__ import annotations

import numpy as np
import pytest

from facedouble.config import MergeConfig
from facedouble.faces import align, meta
from facedouble.merge import merger, superres
from test_merge_support import IdentitySwapper, decode, dst_ws, dst_ws_template, landmarks, unmarked  # noqa: F401


@pytest.fixture(scope="module")
def src_faces(media):
    """32 aligned faces of the woman (the src of the sample pair), 192 px."""
    out = []
    for img in decode(media / "WolfgangLanger_Pexels.mp4")[::14][:32]:
        for lm, _ in landmarks(img)[:1]:
            out.append(align.warp_to_face(img, align.face_matrix(lm, "whole-face", 192), 192))
    assert len(out) >= 24
    return out


@pytest.mark.slow  # ~60 s on 2 idle cores (several minutes on a busy machine); benchmarks/merge.py measures more
def test_face_detail_beats_bicubic_on_held_back_faces(src_faces):
    detail = superres.train_face_detail(src_faces, 128, steps=250, holdout=0.2, seed=0)
    m = detail.metrics
    assert m["test_faces"] >= 5 and m["steps"] == 250
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
        rec = meta.FaceRecord(face_type="whole-face", size=192, landmarks=np.zeros((68, 2), np.float32),
                              source_landmarks=np.zeros((68, 2), np.float32), matrix=np.eye(2, 3),
                              source_filename=f"{i + 1:06d}.png", source_rect=(0, 0, 1, 1))
        meta.write_face(ws.aligned("src") / f"{i + 1:06d}_0.jpg", face, rec)
    real = superres.train_face_detail
    monkeypatch.setattr(superres, "train_face_detail", lambda faces, size, **kw: real(faces, size, steps=5, **kw))
    detail = merger.load_face_detail(ws, MergeConfig(super_resolution=True), 64)
    assert detail.size == 128 and superres.detail_path(ws.model, 128).exists()
