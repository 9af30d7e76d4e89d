"""Importing faces made by the original tool (DeepFaceLab): a JPEG with a pickled dict in APP15. The pickle
is read with a restricted unpickler; one that would run code is refused without running it."""

from __future__ import annotations

import os
import pickle
import struct

import numpy as np
import pytest

from facedouble.errors import MetadataError
from facedouble.faces import align, meta
from facedouble.faces.find import FaceFinder


def read(path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def dfl_jpeg(image: np.ndarray, payload: bytes) -> bytes:
    """A JPEG laid out like the original tool's: SOI, APP15 with the pickle, then the encoder's segments."""
    jpg = meta.encode_image(image, ".jpg", 95)
    app15 = b"\xff\xef" + struct.pack(">H", len(payload) + 2) + payload
    return jpg[:2] + app15 + jpg[2:]


@pytest.fixture(scope="module")
def dfl_face(media):
    """An aligned 256 px whole face of single_face.jpg and the dict the original tool would store."""
    frame = read(media / "single_face.jpg")
    lm = FaceFinder("auto").find(frame)[0].landmarks
    m = align.face_matrix(lm, "whole-face", 256)
    face = align.warp_to_face(frame, m, 256)
    info = {
        "face_type": "whole_face",
        "landmarks": align.transform_points(lm, m).astype(np.float32),
        "source_filename": "00042.png",
        "source_rect": (185, 190, 380, 410),
        "source_landmarks": lm.astype(np.float32),
        "image_to_face_mat": m,
        "eyebrows_expand_mod": 1.0,
        "seg_ie_polys": {"polys": [{"type": 1, "pts": np.array([[10, 10], [200, 12], [120, 240]], np.float32)},
                                   {"type": 0, "pts": [[50.0, 50.0], [60.0, 50.0], [55.0, 60.0]]}]},
        "xseg_mask": meta.encode_image(np.pad(np.full((64, 64), 255, np.uint8), 32), ".png"),
        "scalar": np.float32(0.5),
    }
    return face, info, lm, m


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_dfl_face_imports(tmp_path, dfl_face, protocol):
    face, info, lm, m = dfl_face
    src = tmp_path / "dfl"
    src.mkdir()
    data = dfl_jpeg(face, pickle.dumps(info, protocol=protocol))
    (src / "00042_0.jpg").write_bytes(data)
    (src / "plain.jpg").write_bytes(meta.encode_image(face, ".jpg"))
    res = meta.import_dfl(src, tmp_path / "out", identity=protocol == 4)
    assert [p.name for p in res.imported] == ["00042_0.jpg"]
    assert res.skipped == [("plain.jpg", "no metadata of the original tool")]
    image, rec = meta.read_face(tmp_path / "out" / "00042_0.jpg")
    assert rec.face_type == "whole-face" and rec.size == 256
    assert rec.source_filename == "00042.png" and rec.source_rect == (185, 190, 380, 410)
    assert np.allclose(rec.landmarks, info["landmarks"]) and np.allclose(rec.source_landmarks, lm)
    assert np.allclose(rec.matrix, m)
    assert rec.mask_polys == [[[10.0, 10.0], [200.0, 12.0], [120.0, 240.0]]]
    assert rec.extra["mask_exclude_polys"] == [[[50.0, 50.0], [60.0, 50.0], [55.0, 60.0]]]
    assert rec.extra["eyebrows_expand_mod"] == 1.0
    # the xseg mask (a 64 px square in the middle of 128 px) becomes an outline in face pixels (x2)
    outline = np.array(rec.extra["xseg_polys"][0])
    assert np.allclose(outline.min(0), 64, atol=2) and np.allclose(outline.max(0), 190, atol=3)
    # the frame-to-face matrix maps the aligned landmarks back onto the frame
    assert np.abs(align.transform_points(rec.landmarks, align.invert(rec.matrix)) - lm).max() < 1e-3
    # pixels untouched, the pickle is gone
    out = (tmp_path / "out" / "00042_0.jpg").read_bytes()
    assert out.endswith(data[data.index(b"\xff\xda"):])
    assert meta.dfl_metadata(out) is None
    if protocol == 4:
        assert rec.identity is not None and rec.identity.shape == (128,)
        assert -20 < rec.extra["yaw"] < 20


class Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path, dfl_face):
    face, info, _, _ = dfl_face
    marker = tmp_path / "pwned"
    payload = pickle.dumps({**info, "landmarks": Evil(str(marker))})
    with pytest.raises(MetadataError, match="refused"):
        meta.restricted_loads(payload)
    src = tmp_path / "dfl"
    src.mkdir()
    (src / "evil.jpg").write_bytes(dfl_jpeg(face, payload))
    before = (src / "evil.jpg").read_bytes()
    res = meta.import_dfl(src, identity=False)
    assert res.imported == [] and "refused" in res.skipped[0][1]
    assert not marker.exists()
    assert (src / "evil.jpg").read_bytes() == before  # left as it was


@pytest.mark.parametrize("obj", [
    pytest.param(lambda: __import__("subprocess").Popen, id="function"),
    pytest.param(lambda: {"a": __import__("collections").OrderedDict(a=1)}, id="class"),
    pytest.param(lambda: eval, id="builtin"),
])
def test_restricted_unpickler_refuses_other_globals(obj):
    with pytest.raises(MetadataError):
        meta.restricted_loads(pickle.dumps(obj()))


def test_restricted_unpickler_reads_plain_values_and_arrays():
    value = {"a": [1, 2.5, "x", None, True, (3, 4)], "b": b"\x00\x01", "arr": np.arange(6, dtype=np.int16).reshape(2, 3),
             "f": np.float64(2.5), "dt": np.dtype("f4")}
    back = meta.restricted_loads(pickle.dumps(value))
    assert back["a"] == value["a"] and back["b"] == value["b"] and back["f"] == 2.5 and back["dt"] == np.dtype("f4")
    assert np.array_equal(back["arr"], value["arr"]) and back["arr"].dtype == np.int16
    with pytest.raises(MetadataError):
        meta.restricted_loads(b"\x80\x04not a pickle")


def test_unsupported_face_type_is_skipped(tmp_path, dfl_face):
    face, info, _, _ = dfl_face
    src = tmp_path / "dfl"
    src.mkdir()
    (src / "a.jpg").write_bytes(dfl_jpeg(face, pickle.dumps({**info, "face_type": "mark_only"})))
    res = meta.import_dfl(src, identity=False)
    assert res.imported == [] and "mark_only" in res.skipped[0][1]


def test_cli_import_dfl(tmp_path, dfl_face):
    from typer.testing import CliRunner

    from facedouble.cli import app

    face, info, _, _ = dfl_face
    src = tmp_path / "dfl"
    src.mkdir()
    (src / "a.jpg").write_bytes(dfl_jpeg(face, pickle.dumps(info)))
    result = CliRunner().invoke(app, ["util", "import-dfl", str(src), "--no-identity"])
    assert result.exit_code == 0, result.output
    assert "imported 1 face" in result.output
    assert meta.read_record(src / "a.jpg").face_type == "whole-face"
