"""Bad input to the video commands: one sentence naming the file or option, exit code 1, nothing overwritten."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from facedouble.cli import app


def run(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result


def error_of(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert text.startswith("error:"), text
    return text


def faststart_copy(src: Path, dst: Path) -> Path:
    """The same video with its index first (as streaming sites serve it)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream_index]
                out.mux(packet)
    return dst


def test_missing_inputs(workspace, tmp_path):
    text = error_of("video", "cut", tmp_path / "nope.mp4", "--from", "1")
    assert "nope.mp4 does not exist" in text
    text = error_of("video", "extract", "src", "-w", workspace.root)
    assert "No data_src video" in text and "data_src.mp4" in text
    text = error_of("video", "build", "-w", workspace.root)
    assert "No numbered frames" in text and "merged" in text
    text = error_of("video", "denoise", "dst", "-w", workspace.root)
    assert "video extract dst" in text
    text = error_of("video", "extract", "src", "-w", tmp_path / "no-workspace")
    assert "does not exist" in text and "workspace init" in text


def test_not_a_video(workspace):
    (workspace.root / "data_src.mp4").write_text("these are not the frames you are looking for\n")
    text = error_of("video", "extract", "src", "-w", workspace.root)
    assert "data_src.mp4 is not a readable video" in text
    assert not workspace.frame_files("src")


def test_truncated_videos(workspace, media, tmp_path):
    data = (media / "single_face.mp4").read_bytes()  # index at the end
    (workspace.root / "data_src.mp4").write_bytes(data[: len(data) // 2])
    text = error_of("video", "extract", "src", "-w", workspace.root)
    assert "data_src.mp4 is not a readable video" in text and "truncated" in text

    fast = faststart_copy(media / "single_face.mp4", tmp_path / "fast.mp4").read_bytes()  # index first
    (workspace.root / "data_src.mp4").write_bytes(fast[: int(len(fast) * 0.9)])
    text = error_of("video", "extract", "src", "-w", workspace.root)
    assert "data_src.mp4 is truncated" in text and "copy or download it again" in text
    text = error_of("video", "cut", workspace.root / "data_src.mp4", "--from", "1")
    assert "is truncated" in text and not (workspace.root / "data_src_cut.mp4").exists()


def test_corrupt_video(workspace, media):
    data = bytearray((media / "single_face.mp4").read_bytes())
    start = data.find(b"mdat") + 8
    data[start:start + 150_000] = np.random.default_rng(0).integers(0, 256, 150_000, dtype=np.uint8).tobytes()
    (workspace.root / "data_dst.mp4").write_bytes(bytes(data))
    text = error_of("video", "extract", "dst", "-w", workspace.root)
    assert "data_dst.mp4 is corrupt and could not be decoded" in text and "export it again" in text
    text = error_of("video", "cut", workspace.root / "data_dst.mp4", "--from", "0.5")
    assert "data_dst.mp4 is corrupt" in text and not (workspace.root / "data_dst_cut.mp4").exists()


def test_unwritable_frames_folder(workspace, media):
    shutil.copy(media / "single_face.mp4", workspace.root / "data_src.mp4")
    folder = workspace.frames("src")
    if os.geteuid() == 0:  # root writes anywhere: block the folder with a file of that name instead
        shutil.rmtree(folder)
        folder.write_text("in the way")
    else:
        folder.chmod(0o500)
    try:
        text = error_of("video", "extract", "src", "-w", workspace.root)
    finally:
        if folder.is_dir():
            folder.chmod(0o700)
    assert f"Cannot write into {folder}" in text and "writable" in text


def test_out_of_range_options_leave_everything_as_it_was(workspace, media, tmp_path):
    ws = workspace
    shutil.copy(media / "single_face.mp4", ws.root / "data_dst.mp4")
    clip = Path(shutil.copy(media / "single_face.mp4", tmp_path / "clip.mp4"))
    (tmp_path / "clip_cut.mp4").write_bytes(b"earlier cut")
    (ws.root / "result.mp4").write_bytes(b"earlier result")

    assert "--jpeg-quality must be between 1 and 100, not 0" in error_of(
        "video", "extract", "dst", "-w", ws.root, "--format", "jpg", "--jpeg-quality", "0")
    assert "--fps applies to src only" in error_of("video", "extract", "dst", "-w", ws.root, "--fps", "5")
    assert "--format must be one of png, jpg, not 'gif'" in error_of("video", "extract", "dst", "-w", ws.root, "--format", "gif")
    assert "--factor must be between 1 and 20, not 25" in error_of("video", "denoise", "dst", "-w", ws.root, "--factor", "25")
    assert "SIDE must be dst" in error_of("video", "denoise", "src", "-w", ws.root)
    assert "--format must be one of mp4, avi" in error_of("video", "build", "-w", ws.root, "--format", "webm")
    assert "--bitrate must be between" in error_of("video", "build", "-w", ws.root, "--bitrate", "0")
    assert "--from must be a time like 00:01:05.250" in error_of("video", "cut", clip, "--from", "1:xx")
    assert "--to 00:00:01 must be later than --from 00:00:02" in error_of(
        "video", "cut", clip, "--from", "00:00:02", "--to", "00:00:01")
    assert "--from 00:00:09 is past the end of clip.mp4" in error_of("video", "cut", clip, "--from", "00:00:09")
    text = error_of("video", "cut", clip, "--from", "0.5", "--audio-track", "3")
    assert "--audio-track 3 does not exist" in text and "1 audio track(s)" in text
    assert "--jpeg-quality must be between 1 and 100" in error_of("util", "png-to-jpg", tmp_path, "--jpeg-quality", "101")

    assert not ws.frame_files("dst")
    assert (tmp_path / "clip_cut.mp4").read_bytes() == b"earlier cut"
    assert (ws.root / "result.mp4").read_bytes() == b"earlier result"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["clip.mp4", "clip_cut.mp4"]


def test_resume_refuses_to_mix_formats_and_rates(workspace, media):
    shutil.copy(media / "single_face.mp4", workspace.root / "data_src.mp4")
    assert run("video", "extract", "src", "-w", workspace.root, "--fps", "5").exit_code == 0
    assert "--format jpg does not match the png frames" in error_of(
        "video", "extract", "src", "-w", workspace.root, "--fps", "5", "--format", "jpg")
    assert "--fps 10.0 differs from the 5.0 extraction" in error_of(
        "video", "extract", "src", "-w", workspace.root, "--fps", "10")


def test_mov_alpha_without_masks(workspace, media):
    shutil.copy(media / "single_face.mp4", workspace.root / "data_dst.mp4")
    run("video", "extract", "dst", "-w", workspace.root)
    for p in workspace.frame_files("dst"):
        shutil.copy(p, workspace.merged / p.name)
    text = error_of("video", "build", "-w", workspace.root, "--format", "mov-alpha")
    assert "No mask for 000001.png" in text and "merged_mask" in text
    assert not list(workspace.root.glob("result*"))


def test_png_to_jpg_keeps_face_records(tmp_path):
    container = pytest.importorskip("facedouble.faces.container")
    folder = tmp_path / "aligned"
    folder.mkdir()
    rng = np.random.default_rng(0)
    records = {}
    for i in range(3):
        rec = container.FaceRecord(
            face_type="whole-face", size=64,
            landmarks=rng.uniform(0, 64, (68, 2)).astype(np.float32),
            source_landmarks=rng.uniform(0, 640, (68, 2)).astype(np.float32),
            matrix=np.array([[0.5, 0, -10], [0, 0.5, -20]], np.float64),
            source_filename=f"{i + 1:06d}.png", source_rect=(10, 20, 110, 120), source_size=(640, 360))
        image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        container.write_face(folder / f"{i + 1:06d}_0.png", image, rec)
        records[f"{i + 1:06d}_0"] = rec.to_json()
    (folder / "notes.png").write_bytes((folder / "000001_0.png").read_bytes()[:8] + b"")  # not a face image
    result = run("util", "png-to-jpg", folder, "--jpeg-quality", "90")
    assert result.exit_code == 0, result.output
    jpgs = sorted(folder.glob("*.jpg"))
    assert [p.stem for p in jpgs] == sorted(records)
    for p in jpgs:
        assert container.read_record(p).to_json() == records[p.stem]
        image, _ = container.read_face(p)
        assert image.shape == (64, 64, 3)
    assert sorted(p.name for p in (folder / "png_backup").iterdir()) == [f"{s}.png" for s in sorted(records)]
    assert not list(folder.glob("0*.png"))
