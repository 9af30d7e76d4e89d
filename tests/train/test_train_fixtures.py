"""The training tests' shared faces (the `train_faces` fixture of tests/conftest.py, made by
support/facesets.py) are real aligned faces: whole-face crops with level eyes in the upper half."""

from __future__ import annotations

from support.facesets import ALIGNED_SIZE, FACES_PER_SIDE


def test_fixture_faces_are_real_aligned_faces(train_faces):
    from facedouble.faces.container import read_face

    for side in ("src", "dst"):
        files = sorted(train_faces[side].glob("*.jpg"))
        assert len(files) >= FACES_PER_SIDE // 2
        image, record = read_face(files[0])
        assert image.shape == (ALIGNED_SIZE, ALIGNED_SIZE, 3) and record.face_type == "whole-face"
        # eyes of an aligned face sit level, in the upper half
        eyes = record.landmarks[36:48]
        assert eyes[:, 1].max() < ALIGNED_SIZE * 0.6 and abs(record.landmarks[36:42, 1].mean() - record.landmarks[42:48, 1].mean()) < 10
