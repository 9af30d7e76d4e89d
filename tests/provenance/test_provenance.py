"""Provenance marks on result files: container tag, C2PA credentials (local CA in a temporary config folder),
`verify_file` and `facedouble verify`, and the convenience API the merger and the video build call."""

from __future__ import annotations

import json
import os
import stat
import struct
import sys
from pathlib import Path

import av
import cv2
import pytest
from typer.testing import CliRunner

import facedouble
import facedouble.provenance as prov
from facedouble.cli import app
from facedouble.errors import InputError, ProvenanceError
from facedouble.provenance import credentials, tag
from facedouble.provenance.verify import verify_file

COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
RUN = "0badf00d"


@pytest.fixture(autouse=True)
def config_dir(tmp_path_factory, monkeypatch):
    """Every test signs with credentials made in its own temporary config folder."""
    folder = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("FACEDOUBLE_CONFIG_DIR", str(folder))
    return folder


def _write_video(path: Path, frames, metadata: dict[str, str] | None = None, use_metadata_tags: bool = True,
                 fps: int = 30) -> Path:
    opts = {"movflags": "+use_metadata_tags+faststart"} if use_metadata_tags else {}
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options=opts) as c:
        c.metadata.update(metadata or {})
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "23", "preset": "fast"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def dst_frames(media):
    with av.open(str(media / "single_face.mp4")) as c:
        return [f.to_ndarray(format="rgb24") for _, f in zip(range(24), c.decode(video=0))]


@pytest.fixture()
def result_video(tmp_path, dst_frames, media):
    """What the merger + video build make: marked frames, the tag in the container, signed with the dst video
    as parent."""
    frames = [prov.mark_frame(f, RUN) for f in dst_frames]
    path = _write_video(tmp_path / "result.mp4", frames, prov.container_metadata(RUN))
    prov.sign_result(path, media / "single_face.mp4", "ab" * 32, RUN)
    return path


@pytest.fixture()
def result_png(tmp_path, dst_frames, media):
    path = tmp_path / "000001.png"
    cv2.imwrite(str(path), cv2.cvtColor(prov.mark_frame(dst_frames[0], RUN), cv2.COLOR_RGB2BGR))
    prov.sign_result(path, media / "single_face.mp4", "cd" * 32, RUN)
    return path


def _boxes(data: bytes):
    """Top-level MP4 boxes: (type, start, size)."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        yield kind.decode("latin-1"), pos, size
        pos += size


def _png_chunks(data: bytes):
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind.decode("latin-1"), pos + 8, length
        pos += 12 + length


def _flip_middle(path: Path, start: int, size: int) -> None:
    data = bytearray(path.read_bytes())
    mid = start + size // 2
    for i in range(4):
        data[mid + i] ^= 0xFF
    path.write_bytes(bytes(data))


# -- container tag ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("use_tags", [True, False], ids=["metadata-tags", "plain-mp4"])
def test_container_tag_round_trips_through_mp4(tmp_path, dst_frames, use_tags):
    md = prov.container_metadata(RUN)
    assert "AI-generated" in md["comment"] and RUN in md["comment"] and "facedouble" in md["comment"]
    path = _write_video(tmp_path / "t.mp4", dst_frames[:3], md, use_metadata_tags=use_tags)
    found = tag.read_tag(path)
    assert found is not None and found["run_id"] == RUN and found["ai_generated"] is True
    assert found["version"] == facedouble.__version__
    assert "comment" in found["keys"]
    if use_tags:
        assert "facedouble_run_id" in found["keys"] and found["digital_source_type"] == COMPOSITE


def test_container_tag_absent_and_case_insensitive(media):
    assert tag.read_tag(media / "single_face.mp4") is None
    upper = {k.upper(): v for k, v in prov.container_metadata("12345678").items()}   # how Matroska reads back
    assert tag.parse_tag(upper)["run_id"] == "12345678"
    with pytest.raises(InputError, match="does not exist"):
        tag.read_tag(media / "missing.mp4")


# -- credentials --------------------------------------------------------------------------------------------

def test_local_ca_and_leaf_made_once_in_config_dir(config_dir):
    creds = credentials.ensure_credentials()
    assert creds.chain.parent == config_dir / "c2pa"
    assert creds.chain.read_text().count("BEGIN CERTIFICATE") == 2
    if os.name == "posix":
        assert stat.S_IMODE(creds.key.stat().st_mode) == 0o600
    again = credentials.ensure_credentials()
    assert again.chain.read_bytes() == creds.chain.read_bytes()


def test_config_dir_is_platform_appropriate(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEDOUBLE_CONFIG_DIR", str(tmp_path / "x"))
    assert credentials.config_dir() == tmp_path / "x"
    monkeypatch.delenv("FACEDOUBLE_CONFIG_DIR")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        assert credentials.config_dir() == tmp_path / "xdg" / "facedouble"


def test_signed_png_is_valid_with_expected_claims(result_png):
    info = credentials.read_manifest(result_png)
    assert info.state == "valid", info.errors
    actions = info.claims["actions"]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]
    assert actions[1]["digitalSourceType"] == COMPOSITE and actions[1]["softwareAgent"].startswith("facedouble")
    assert info.claims["ingredients"] == [{"title": "single_face.mp4", "relationship": "parentOf",
                                           "format": "video/mp4"}]
    assert info.claims["training"]["sha256"] == "cd" * 32 and info.claims["training"]["run_id"] == RUN
    assert info.claims["trusted"] is True   # our own CA is the reader's trust anchor on this machine


def test_signed_mp4_without_parent_starts_with_created(tmp_path, dst_frames):
    path = _write_video(tmp_path / "r.mp4", dst_frames[:5])
    before = path.stat().st_size
    credentials.sign_file(path, parent=None, training_hash=None, run_id=RUN)
    assert path.stat().st_size > before and not list(tmp_path.glob(".r.signing-*"))
    info = credentials.read_manifest(path)
    assert info.state == "valid"
    assert [a["action"] for a in info.claims["actions"]] == ["c2pa.created", "c2pa.edited"]
    assert all(a["digitalSourceType"] == COMPOSITE for a in info.claims["actions"])


def test_signed_jpeg_is_valid(tmp_path, dst_frames):
    path = tmp_path / "export.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(prov.mark_frame(dst_frames[0], RUN), cv2.COLOR_RGB2BGR))
    prov.sign_result(path, None, None, RUN)
    assert credentials.read_manifest(path).state == "valid"


def test_edited_png_reads_invalid(result_png):
    data = result_png.read_bytes()
    idat = max((c for c in _png_chunks(data) if c[0] == "IDAT"), key=lambda c: c[2])
    _flip_middle(result_png, idat[1], idat[2])
    info = credentials.read_manifest(result_png)
    assert info.state == "invalid"
    assert any("mismatch" in e for e in info.errors)


def test_edited_mp4_reads_invalid(result_video):
    mdat = next(b for b in _boxes(result_video.read_bytes()) if b[0] == "mdat")
    _flip_middle(result_video, mdat[1], mdat[2])
    info = credentials.read_manifest(result_video)
    assert info.state == "invalid" and any("mismatch" in e for e in info.errors)
    report = verify_file(result_video)
    assert report.c2pa["state"] == "invalid"


def test_unsigned_file_is_absent_and_bad_inputs_are_clear(media, tmp_path):
    assert credentials.read_manifest(media / "single_face.jpg").state == "absent"
    other = tmp_path / "a.gif"
    other.write_bytes(b"GIF89a")
    with pytest.raises(ProvenanceError, match="cannot carry content credentials"):
        credentials.sign_file(other, parent=None, training_hash=None, run_id=RUN)
    with pytest.raises(InputError, match="does not exist"):
        credentials.sign_file(tmp_path / "none.png", parent=None, training_hash=None, run_id=RUN)


def test_training_hash_is_order_free_and_content_blind(tmp_path):
    a, b = tmp_path / "src", tmp_path / "dst"
    a.mkdir(), b.mkdir()
    (a / "000001_0.jpg").write_bytes(b"x" * 10)
    (b / "000002_0.jpg").write_bytes(b"y" * 20)
    h = prov.training_hash(a, b)
    assert len(h) == 64 and h == prov.training_hash(a, b)
    (a / "000001_0.jpg").write_bytes(b"z" * 10)           # same names and sizes: same hash
    assert prov.training_hash(a, b) == h
    (a / "000003_0.jpg").write_bytes(b"q")
    assert prov.training_hash(a, b) != h


# -- verify -------------------------------------------------------------------------------------------------

def test_verify_result_video_reports_all_three_marks(result_video):
    r = verify_file(result_video)
    assert r.kind == "video" and r.marked
    assert r.watermark["found"] and r.watermark["payload"]["run_id"] == RUN
    assert r.watermark["bit_accuracy"] >= 0.99 and r.watermark["frames_checked"] == 10
    assert r.watermark["frames_found"] >= 8
    assert r.c2pa["state"] == "valid"
    assert [a["action"] for a in r.c2pa["claims"]["actions"]] == ["c2pa.opened", "c2pa.edited"]
    assert r.tag["run_id"] == RUN
    json.dumps(r.to_dict())


def test_verify_cli_exit_codes_and_json(result_video, result_png, media, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", str(result_video), str(result_png)])
    assert ok.exit_code == 0, ok.output
    assert "marked as AI-generated" in ok.output and "valid" in ok.output

    res = runner.invoke(app, ["verify", "--json", str(media / "single_face.mp4")])
    assert res.exit_code == 1, res.output
    data = json.loads(res.stdout)
    assert data[0]["marked"] is False and data[0]["watermark"]["found"] is False
    assert data[0]["c2pa"]["state"] == "absent" and data[0]["tag"] is None

    missing = runner.invoke(app, ["verify", str(tmp_path / "nothing.mp4"), str(result_png)])
    assert missing.exit_code == 2
    assert "nothing.mp4 does not exist" in missing.output and "Traceback" not in missing.output

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 64)
    bad = runner.invoke(app, ["verify", str(junk)])
    assert bad.exit_code == 2 and "junk.mp4" in bad.output


def test_verify_image_marked_by_watermark_alone(tmp_path, dst_frames):
    path = tmp_path / "frame.jpg"   # a merged frame re-saved as JPEG: no manifest, the watermark remains
    cv2.imwrite(str(path), cv2.cvtColor(prov.mark_frame(dst_frames[3], RUN), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 60])
    r = verify_file(path)
    assert r.kind == "image" and r.marked and r.c2pa["state"] == "absent"
    assert r.watermark["payload"]["run_id"] == RUN
