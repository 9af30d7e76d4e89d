"""Face metadata inside JPEG/PNG, and the alignment geometry."""

from __future__ import annotations

import numpy as np
import pytest

from facedouble.errors import MetadataError
from facedouble.faces import align, container


def _record(rng, big_polys: int = 0) -> container.FaceRecord:
    lm = rng.uniform(100, 400, (68, 2)).astype(np.float32)
    return container.FaceRecord(
        face_type="whole-face", size=256,
        landmarks=rng.uniform(0, 256, (68, 2)).astype(np.float32), source_landmarks=lm,
        matrix=rng.normal(size=(2, 3)), source_filename="000012.png", source_rect=(10, 20, 110, 140),
        source_size=(640, 360), face_index=1, detector="dlib", landmarker="dlib68",
        identity=rng.normal(size=128).astype(np.float32),
        mask_polys=[[[float(x), float(x)] for x in range(big_polys)]], extra={"yaw": 3.5},
    )


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("poly", [0, 12000])  # 12000 points spans several JPEG segments
def test_record_round_trips_exactly(tmp_path, suffix, poly):
    rng = np.random.default_rng(0)
    rec = _record(rng, poly)
    img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    path = container.write_face(tmp_path / f"f{suffix}", img, rec)
    back_img, back = container.read_face(path)
    assert back.to_bytes() == rec.to_bytes()
    assert back_img.shape == img.shape
    if suffix == ".png":
        assert np.array_equal(back_img, img)
    # replacing the record leaves the pixels byte-identical
    before = path.read_bytes()
    rec.extra["blur"] = 1.25
    container.update_record(path, rec)
    assert container.read_record(path).extra["blur"] == 1.25
    container.update_record(path, None)
    assert container.read_record(path) is None
    if suffix == ".jpg":
        assert path.read_bytes()[-1000:] == before[-1000:]


def test_corrupt_record_raises_typed_error(tmp_path):
    rng = np.random.default_rng(1)
    path = container.write_face(tmp_path / "f.jpg", np.zeros((64, 64, 3), np.uint8), _record(rng))
    data = bytearray(path.read_bytes())
    i = data.index(container.IDENT) + len(container.IDENT) + 4
    data[i:i + 5] = b"!!!!!"
    path.write_bytes(bytes(data))
    with pytest.raises(MetadataError):
        container.read_face(path)


def test_face_matrix_maps_template_and_back():
    rng = np.random.default_rng(2)
    lm = rng.uniform(200, 300, (68, 2)).astype(np.float32)
    m = align.face_matrix(lm, "full", 256)
    back = align.transform_points(align.transform_points(lm, m), align.invert(m))
    assert np.abs(back - lm).max() < 1e-3
    # a similarity: equal scale on both axes, no shear
    a = m[:, :2]
    assert abs(np.linalg.norm(a[:, 0]) - np.linalg.norm(a[:, 1])) < 1e-9 and abs(a[:, 0] @ a[:, 1]) < 1e-9


def test_face_types_nest():
    # canonical points of a face centred in a 100 px box
    lm = np.zeros((68, 2), np.float32)
    pts = align.TEMPLATE_5 * 100
    lm[36:42], lm[42:48], lm[30], lm[48], lm[54] = pts[0], pts[1], pts[2], pts[3], pts[4]
    scales = [align.matrix_scale(align.face_matrix(lm, t, 256)) for t in ("half", "mid-full", "full", "whole-face", "head")]
    assert scales == sorted(scales, reverse=True)  # larger face types cover more, so fewer px per frame px
