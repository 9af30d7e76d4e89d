"""Importing faces made by the original tool (DeepFaceLab): a JPEG with a pickled dict in APP15. The pickle
is read with a restricted unpickler; one that would run code is refused without running it."""

from __future__ import annotations

import os
import pickle
import struct

import numpy as np
import pytest

from facedouble.errors import MetadataError
from facedouble.faces import align, dfl, container
from facedouble.faces.find import FaceFinder


def read(path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def dfl_jpeg(image: np.ndarray, payload: bytes) -> bytes:
    """A JPEG laid out like the original tool's: SOI, APP15 with the pickle, then the encoder's segments."""
    jpg = container.encode_image(image, ".jpg", 95)
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
        "xseg_mask": container.encode_image(np.pad(np.full((64, 64), 255, np.uint8), 32), ".png"),
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
    (src / "plain.jpg").write_bytes(container.encode_image(face, ".jpg"))
    before = hashes(src)
    res = dfl.import_dfl(src, tmp_path / "out", identity=protocol == 4)
    assert hashes(src) == before
    assert [p.name for p in res.imported] == ["00042_0.jpg"]
    assert res.skipped == [("plain.jpg", "no metadata of the original tool")]
    image, rec = container.read_face(tmp_path / "out" / "00042_0.jpg")
    assert rec.face_type == "whole-face" and rec.size == 256
    assert rec.source_filename == "00042.png" and rec.source_rect == (185, 190, 380, 410)
    assert np.allclose(rec.landmarks, info["landmarks"]) and np.allclose(rec.source_landmarks, lm)
    assert np.allclose(rec.matrix, m)
    assert rec.mask_polys == [[[10.0, 10.0], [200.0, 12.0], [120.0, 240.0]]]
    assert rec.exclude_polys == [[[50.0, 50.0], [60.0, 50.0], [55.0, 60.0]]]  # XSeg labels kept, explicit
    assert "mask_exclude_polys" not in rec.extra
    assert rec.extra["eyebrows_expand_mod"] == 1.0
    # the xseg mask (a 64 px square in the middle of 128 px) becomes an outline in face pixels (x2)
    outline = np.array(rec.extra["xseg_polys"][0])
    assert np.allclose(outline.min(0), 64, atol=2) and np.allclose(outline.max(0), 190, atol=3)
    # the frame-to-face matrix maps the aligned landmarks back onto the frame
    assert np.abs(align.transform_points(rec.landmarks, align.invert(rec.matrix)) - lm).max() < 1e-3
    # pixels untouched, the pickle is gone
    out = (tmp_path / "out" / "00042_0.jpg").read_bytes()
    assert out.endswith(data[data.index(b"\xff\xda"):])
    assert dfl.dfl_metadata(out) is None
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
        dfl.restricted_loads(payload)
    src = tmp_path / "dfl"
    src.mkdir()
    (src / "evil.jpg").write_bytes(dfl_jpeg(face, payload))
    before = (src / "evil.jpg").read_bytes()
    res = dfl.import_dfl(src, tmp_path / "out", identity=False)
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
        dfl.restricted_loads(pickle.dumps(obj()))


def test_restricted_unpickler_reads_plain_values_and_arrays():
    value = {"a": [1, 2.5, "x", None, True, (3, 4)], "b": b"\x00\x01", "arr": np.arange(6, dtype=np.int16).reshape(2, 3),
             "f": np.float64(2.5), "dt": np.dtype("f4")}
    back = dfl.restricted_loads(pickle.dumps(value))
    assert back["a"] == value["a"] and back["b"] == value["b"] and back["f"] == 2.5 and back["dt"] == np.dtype("f4")
    assert np.array_equal(back["arr"], value["arr"]) and back["arr"].dtype == np.int16
    with pytest.raises(MetadataError):
        dfl.restricted_loads(b"\x80\x04not a pickle")


def test_unsupported_face_type_is_skipped(tmp_path, dfl_face):
    face, info, _, _ = dfl_face
    src = tmp_path / "dfl"
    src.mkdir()
    (src / "a.jpg").write_bytes(dfl_jpeg(face, pickle.dumps({**info, "face_type": "mark_only"})))
    res = dfl.import_dfl(src, tmp_path / "out", identity=False)
    assert res.imported == [] and "mark_only" in res.skipped[0][1]


def hashes(folder) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def dfl_folder(tmp_path, dfl_face):
    """The original tool's aligned folder: two faces, a plain JPEG, a face of an unsupported type, a text file."""
    face, info, _, _ = dfl_face
    src = tmp_path / "dfl"
    src.mkdir()
    (src / "00042_0.jpg").write_bytes(dfl_jpeg(face, pickle.dumps(info)))
    (src / "00043_0.jpg").write_bytes(dfl_jpeg(face[:, ::-1].copy(), pickle.dumps({**info, "source_filename": "00043.png"})))
    (src / "plain.jpg").write_bytes(container.encode_image(face, ".jpg"))
    (src / "mark.jpg").write_bytes(dfl_jpeg(face, pickle.dumps({**info, "face_type": "mark_only"})))
    (src / "notes.txt").write_text("faceset of A")
    return src


def test_import_never_changes_the_source_nor_overwrites(tmp_path, dfl_folder, dfl_face):
    before = hashes(dfl_folder)
    out = tmp_path / "aligned"
    out.mkdir()
    mine = container.encode_image(dfl_face[0][::-1].copy(), ".jpg")      # a different face already named 00042_0.jpg
    (out / "00042_0.jpg").write_bytes(mine)
    res = dfl.import_dfl(dfl_folder, out, identity=False)
    assert hashes(dfl_folder) == before                              # not one source byte changed, nothing added
    assert (out / "00042_0.jpg").read_bytes() == mine                # the existing face kept ...
    assert res.renamed == [("00042_0.jpg", "00042_0.1.jpg")]         # ... and the import written beside it
    assert sorted(p.name for p in res.imported) == ["00042_0.1.jpg", "00043_0.jpg"]
    assert container.read_record(out / "00042_0.1.jpg").source_filename == "00042.png"
    assert container.read_record(out / "00042_0.1.jpg").mask_polys == [[[10.0, 10.0], [200.0, 12.0], [120.0, 240.0]]]
    assert container.read_record(out / "00043_0.jpg").source_filename == "00043.png"
    reasons = res.reasons()
    assert reasons[dfl.SKIP_NO_METADATA] == 1 and reasons[dfl.SKIP_NOT_JPEG] == 1 and len(res.skipped) == 3
    assert any("mark_only" in why for why in reasons)
    text = res.summary()
    assert "imported 2 face(s)" in text and "skipped 3" in text and "00042_0.jpg -> 00042_0.1.jpg" in text
    assert f"1 {dfl.SKIP_NO_METADATA} (plain.jpg)" in text
    # a second run imports nothing again, overwrites nothing, and says why
    written = hashes(out)
    again = dfl.import_dfl(dfl_folder, out, identity=False)
    assert again.imported == [] and again.reasons()[dfl.SKIP_ALREADY] == 2
    assert hashes(out) == written and hashes(dfl_folder) == before


def test_import_into_the_source_folder_is_refused(dfl_folder):
    from facedouble.errors import InputError

    before = hashes(dfl_folder)
    with pytest.raises(InputError, match="cannot be imported into"):
        dfl.import_dfl(dfl_folder, dfl_folder / ".." / dfl_folder.name, identity=False)
    assert hashes(dfl_folder) == before


def test_cli_import_dfl(tmp_path, dfl_folder, workspace):
    from typer.testing import CliRunner

    from facedouble.cli import app

    before = hashes(dfl_folder)
    run = CliRunner().invoke
    result = run(app, ["util", "import-dfl", str(dfl_folder), "-w", str(workspace.root), "--no-identity"])
    assert result.exit_code == 0, result.output
    assert "imported 2 face(s)" in result.output and "skipped 3" in result.output
    assert container.read_record(workspace.aligned("src") / "00042_0.jpg").face_type == "whole-face"
    result = run(app, ["util", "import-dfl", str(dfl_folder), "-w", str(workspace.root), "--side", "dst",
                       "--no-identity"])
    assert result.exit_code == 0 and len(workspace.face_files("dst")) == 2
    result = run(app, ["util", "import-dfl", str(dfl_folder), "-o", str(tmp_path / "elsewhere"), "--no-identity"])
    assert result.exit_code == 0 and len(list((tmp_path / "elsewhere").glob("*.jpg"))) == 2
    result = run(app, ["util", "import-dfl", str(dfl_folder), "-w", str(workspace.root), "--no-identity"])
    assert result.exit_code == 0 and "2 already imported" in result.output   # a re-run: nothing doubled
    assert len(workspace.face_files("src")) == 2
    assert hashes(dfl_folder) == before
    # nothing importable at all: a clear error and a non-zero exit
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "plain.jpg").write_bytes((dfl_folder / "plain.jpg").read_bytes())
    result = run(app, ["util", "import-dfl", str(bad), "-w", str(workspace.root), "--no-identity"])
    assert result.exit_code == 1 and "No face was imported" in result.output
    result = run(app, ["util", "import-dfl", str(dfl_folder), "-o", str(dfl_folder), "--no-identity"])
    assert result.exit_code == 1 and "cannot be imported into" in result.output
    result = run(app, ["util", "import-dfl", str(dfl_folder), "-w", str(workspace.root), "--side", "both"])
    assert result.exit_code == 1 and "--side must be src or dst" in result.output
    assert hashes(dfl_folder) == before
