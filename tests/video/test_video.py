"""Video stages on the real sample media: extract, build, cut, denoise (PyAV only)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facedouble.cli import app
from facedouble.config import DenoiseConfig, VideoBuildConfig, VideoCutConfig, VideoExtractConfig
from facedouble.video import build as build_mod
from facedouble.video import build_video, cut_video, denoise_frames, extract_frames
from facedouble.video.denoise import denoise_image
from facedouble.workspace import Workspace


# -- helpers -----------------------------------------------------------------------------------------------

def streams_info(path: Path, decode: bool = True) -> dict:
    """Frame times (pts), frames, video and audio duration (s), average rate; the frame times from a full
    decode, or (decode=False, cheaper) from the packets the decoder keeps."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {"rate": v.average_rate, "audio": None}
        if decode:
            pts = [f.pts for f in c.decode(v)]
        else:
            pts = sorted(p.pts for p in c.demux(v) if p.size and not p.is_discard)
        info["pts"] = pts
        info["frames"] = len(pts)
        info["video_duration"] = float(v.duration * v.time_base)
        if c.streams.audio:
            a = c.streams.audio[0]
            info["audio"] = float(a.duration * a.time_base)
    return info


def decoded_bgr(path: Path, fmt: str = "bgr24") -> list[np.ndarray]:
    """The frames as an accurate decoder gives them: swscale with accurate rounding and full chroma
    interpolation (its default flags are 1-2 levels dark; see video/pixels.py)."""
    from facedouble.video.pixels import DECODE_FLAGS

    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt, interpolation=DECODE_FLAGS) for f in c.decode(video=0)]


def make_video(path: Path, frames: list[np.ndarray], *, codec: str = "libx264", pix_fmt: str = "yuv420p",
               rate: int = 10, rotation: int = 0, src_format: str = "rgb24") -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=rate)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix_fmt
        if rotation:
            s.set_display_rotation(rotation)
        for img in frames:
            f = av.VideoFrame.from_ndarray(img, format=src_format)
            if src_format != pix_fmt:
                f = f.reformat(format=pix_fmt)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def dst_workspace(workspace: Workspace, media: Path, name: str) -> Workspace:
    shutil.copy(media / name, workspace.root / f"data_dst{Path(name).suffix}")
    return workspace


def frames_to_merged(ws: Workspace) -> None:
    for p in ws.frame_files("dst"):
        shutil.copy(p, ws.merged / p.name)


# -- extract + build ---------------------------------------------------------------------------------------

def test_extract_then_build_keeps_frames_fps_audio(workspace, media):
    ws = dst_workspace(workspace, media, "single_face.mp4")
    result = CliRunner().invoke(app, ["video", "extract", "dst", "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    frames = ws.frame_files("dst")
    assert [p.name for p in frames[:2]] == ["000001.png", "000002.png"] and len(frames) == 72
    assert (ws.frames("dst") / "video_extract.json").exists()
    first = cv2.imread(str(frames[0]))
    assert first.shape == (360, 640, 3)
    # the frame on disk is the decoded frame
    assert np.abs(first.astype(int) - decoded_bgr(media / "single_face.mp4")[0].astype(int)).max() <= 1

    frames_to_merged(ws)
    result = CliRunner().invoke(app, ["video", "build", "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    src, out = streams_info(media / "single_face.mp4"), streams_info(ws.root / "result.mp4")
    frame = 1 / 30
    assert out["frames"] == src["frames"] == 72
    assert out["rate"] == src["rate"] == 30
    assert abs(out["video_duration"] - 2.4) < frame
    assert out["audio"] is not None and abs(out["audio"] - src["audio"]) < frame
    # the pictures survive H.264 at the default bitrate
    back = decoded_bgr(ws.root / "result.mp4")
    diff = back[10].astype(float) - cv2.imread(str(frames[10])).astype(float)
    # ... with their colours: no level lost in the YUV conversions either way (swscale's default flags lost
    # 2-3 levels over extract + build, 40.6 dB), and 45+ dB at the default bitrate
    assert np.abs(diff.reshape(-1, 3).mean(0)).max() < 0.5
    assert 10 * np.log10(255 ** 2 / (diff ** 2).mean()) > 45
    with av.open(str(ws.root / "result.mp4")) as c:
        assert "facedouble_run_id" in c.metadata and "AI-generated" in c.metadata["comment"]


def test_vfr_hevc_mov_keeps_its_timing(workspace, media):
    ws = dst_workspace(workspace, media, "face_noface.mov")
    res = extract_frames(ws, "dst")
    src = streams_info(media / "face_noface.mov", decode=False)
    assert res.total == res.written == src["frames"] == 169
    assert cv2.imread(str(ws.frame_files("dst")[0])).shape == (540, 960, 3)
    frames_to_merged(ws)
    built = build_video(ws, VideoBuildConfig(bitrate=1))
    assert built.audio == "copied"
    out = streams_info(built.path)
    # every frame keeps its own time (30 fps, then 24 fps), so length and average rate are the dst's
    assert out["pts"] == src["pts"]
    assert abs(out["video_duration"] - src["video_duration"]) < 1 / 30
    # MP4 derives the average rate from decode times, which B-frames shift a little on a VFR source
    assert abs(float(out["rate"]) / float(src["rate"]) - 1) < 0.005
    assert abs(out["audio"] - src["audio"]) < 1 / 30


def test_extract_resumes_rewriting_only_missing_frames(workspace, media):
    ws = dst_workspace(workspace, media, "single_face.mp4")
    extract_frames(ws, "dst")
    frames = ws.frame_files("dst")
    victim = frames[9]
    data = victim.read_bytes()
    before = {p.name: p.stat().st_mtime_ns for p in frames if p != victim}
    victim.unlink()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (victim.parent / f".{victim.name}.{dead}.x1y2.tmp").write_bytes(b"half")  # what a kill mid-write leaves
    res = extract_frames(ws, "dst")
    assert (res.written, res.kept, res.total) == (1, 71, 72)
    assert victim.read_bytes() == data
    assert {p.name: p.stat().st_mtime_ns for p in ws.frame_files("dst") if p != victim} == before
    assert not list(ws.frames("dst").glob("*.tmp")) and not list(ws.frames("dst").glob(".*.tmp"))


def test_extract_src_fps_and_jpg(workspace, media):
    shutil.copy(media / "single_face.mp4", workspace.root / "data_src.mp4")
    res = extract_frames(workspace, "src", VideoExtractConfig(fps=10, format="jpg", jpeg_quality=90))
    files = workspace.frame_files("src")
    assert res.total == len(files) == 24 and files[0].name == "000001.jpg"  # 2.4 s at 10 fps
    every = decoded_bgr(media / "single_face.mp4")
    # frame k of the 10 fps set is frame 3k of the 30 fps video
    for k in (0, 5, 23):
        img = cv2.imread(str(files[k])).astype(float)
        errors = [np.abs(img - every[j]).mean() for j in range(len(every))]
        assert int(np.argmin(errors)) == 3 * k


def test_extract_applies_rotation_and_reads_grey_and_10bit(workspace, tmp_path):
    h, w = 48, 64
    img = np.zeros((h, w, 3), np.uint8)
    img[:12, :12] = (255, 0, 0)  # red block in the coded picture's top-left
    make_video(workspace.root / "data_src.mp4", [img] * 3, rotation=90)  # displayed turned 90 deg CCW
    extract_frames(workspace, "src")
    out = cv2.imread(str(workspace.frame_files("src")[0]))
    assert out.shape == (w, h, 3)
    assert out[-3, 3, 2] > 200 and out[3, 3, 2] < 50  # the red corner is now bottom-left

    grey = (np.arange(64, dtype=np.uint8)[None, :] * 4).repeat(48, 0)
    ws2 = Workspace(tmp_path / "ws2").create()
    make_video(ws2.root / "data_src.mkv", [grey] * 3, codec="ffv1", pix_fmt="gray", src_format="gray")
    extract_frames(ws2, "src")
    got = cv2.imread(str(ws2.frame_files("src")[0]))
    assert np.array_equal(got[..., 0], grey) and np.array_equal(got[..., 2], grey)

    ws3 = Workspace(tmp_path / "ws3").create()
    colour = np.dstack([grey, 255 - grey, np.full_like(grey, 128)])
    make_video(ws3.root / "data_dst.mkv", [colour] * 3, codec="ffv1", pix_fmt="yuv444p10le")
    assert extract_frames(ws3, "dst").total == 3
    got = cv2.cvtColor(cv2.imread(str(ws3.frame_files("dst")[0])), cv2.COLOR_BGR2RGB)
    assert np.abs(got.astype(int) - colour.astype(int)).max() <= 3


# -- build formats -----------------------------------------------------------------------------------------

@pytest.fixture()
def merged_ws(workspace, media):
    """single_face.mp4 as dst, its frames extracted and copied to merged/, masks in merged_mask/."""
    ws = dst_workspace(workspace, media, "single_face.mp4")
    extract_frames(ws, "dst")
    frames_to_merged(ws)
    yy, xx = np.mgrid[:360, :640]
    for i, p in enumerate(ws.frame_files("dst")):
        mask = np.clip(255 - np.hypot(xx - 300 - i, yy - 180) * 1.3, 0, 255).astype(np.uint8)
        cv2.imwrite(str(ws.merged_mask / p.name), mask)
    return ws


def test_mov_alpha_round_trips_alpha_exactly(merged_ws):
    res = build_video(merged_ws, VideoBuildConfig(format="mov-alpha"))
    assert res.path.name == "result.mov" and res.frames == 72
    argb = decoded_bgr(res.path, "argb")
    assert len(argb) == 72
    for i, p in enumerate(sorted(merged_ws.merged_mask.iterdir())):
        assert np.array_equal(argb[i][..., 0], cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)), p.name
    frame = cv2.imread(str(merged_ws.merged / "000007.png"))
    assert np.array_equal(argb[6][..., 1:][..., ::-1], frame)  # colour is lossless too
    assert abs(streams_info(res.path)["audio"] - 2.418) < 1 / 30


def test_lossless_and_avi(merged_ws):
    res = build_video(merged_ws, VideoBuildConfig(format="mp4-lossless"))
    back = decoded_bgr(res.path)
    assert len(back) == 72 and np.array_equal(back[40], cv2.imread(str(merged_ws.merged / "000041.png")))
    res = build_video(merged_ws, VideoBuildConfig(format="avi", bitrate=4))
    info = streams_info(res.path)
    assert res.path.suffix == ".avi" and info["frames"] == 72 and abs(info["video_duration"] - 2.4) < 1 / 30
    assert info["audio"] is not None and abs(info["audio"] - 2.418) < 1 / 30


def test_build_keeps_old_result_writes_metadata_and_calls_finalize(merged_ws, monkeypatch):
    seen = []
    monkeypatch.setattr(build_mod, "finalize", lambda path, **context: seen.append((path.name, path.exists(), context)))
    first = build_video(merged_ws, VideoBuildConfig(format="mov-alpha"))
    old = first.path.read_bytes()
    second = build_video(merged_ws, VideoBuildConfig(format="mov-alpha"), metadata={"title": "demo"}, run_id="r42")
    assert second.backup == merged_ws.root / "result.1.mov" and second.backup.read_bytes() == old
    assert len(seen) == 2 and all(ok for _, ok, _ in seen) and seen[0][0].endswith(".mov") and seen[0][0] != "result.mov"
    assert seen[1][2]["run_id"] == "r42" and seen[1][2]["title"] == "result.mov"
    assert seen[1][2]["dst"] == merged_ws.root / "data_dst.mp4" and seen[1][2]["ws"] == merged_ws
    with av.open(str(second.path)) as c:
        assert c.metadata["title"] == "demo" and c.metadata["facedouble_run_id"] == "r42"
        assert "AI-generated" in c.metadata["comment"] and c.metadata["ai_generated"] == "true"
    # the run id defaults to the merge run's, so the tag names the run the watermark carries
    (merged_ws.frames("dst") / "merge_run.json").write_text('{"run_id": "0badf00d"}')
    third = build_video(merged_ws, VideoBuildConfig(format="avi", bitrate=2))
    with av.open(str(third.path)) as c:
        assert third.run_id == "0badf00d" and "(run 0badf00d)" in c.metadata["comment"]
    assert not [p for p in merged_ws.root.iterdir() if "partial" in p.name]


def test_build_without_dst_audio_is_silent(workspace, media, tmp_path):
    ws = workspace
    with av.open(str(media / "single_face.mp4")) as src, av.open(str(ws.root / "data_dst.mp4"), "w") as out:
        vin = src.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for packet in src.demux(vin):
            if packet.dts is not None:
                packet.stream = vout
                out.mux(packet)
    extract_frames(ws, "dst")
    res = build_video(ws, VideoBuildConfig(input_dir=str(ws.frames("dst")), format="avi"))
    info = streams_info(res.path)
    assert res.audio == "none" and info["audio"] is None and info["frames"] == 72


# -- cut ---------------------------------------------------------------------------------------------------

def test_cut_boundaries_within_one_frame(tmp_path, media):
    video = shutil.copy(media / "single_face.mp4", tmp_path / "clip.mp4")
    original = Path(video).read_bytes()
    result = CliRunner().invoke(app, ["video", "cut", str(video), "--from", "00:00:00.500", "--to", "00:00:01.500"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "clip_cut.mp4"
    info = streams_info(out)
    assert abs(info["frames"] - 30) <= 1
    assert abs(info["video_duration"] - 1.0) <= 1 / 30 and abs(info["audio"] - 1.0) <= 1 / 30
    src = [f.astype(float) for f in decoded_bgr(Path(video), "gray")]
    got = decoded_bgr(out, "gray")

    def nearest(img):
        return int(np.argmin([np.abs(img.astype(float) - s).mean() for s in src]))

    assert abs(nearest(got[0]) - 15) <= 1 and abs(nearest(got[-1]) - 44) <= 1
    assert Path(video).read_bytes() == original
    assert (tmp_path / "clip_cut.video_cut.json").exists()
    # cutting again keeps the first cut as a backup
    first_cut = out.read_bytes()
    res = cut_video(video, VideoCutConfig(start="00:00:01.000"))
    assert res.backup == tmp_path / "clip_cut.1.mp4" and res.backup.read_bytes() == first_cut
    assert abs(res.frames - 42) <= 1


@pytest.mark.slow
def test_cut_vfr_mov_with_late_audio(tmp_path, media):
    video = shutil.copy(media / "face_noface.mov", tmp_path / "clip.mov")
    res = cut_video(video, VideoCutConfig(start="00:00:02.000", end="00:00:04.250"))
    info = streams_info(res.path)
    assert abs(info["video_duration"] - 2.25) <= 1 / 24 and abs(res.start - 2.0) <= 1 / 24
    assert abs(info["audio"] - (4.25 - 2.43)) <= 1 / 24  # the audio track starts at 2.43 s


# -- denoise -----------------------------------------------------------------------------------------------

def test_denoise_image_lowers_noise_and_keeps_edges():
    clean = np.full((120, 160, 3), 60, np.uint8)
    clean[:, 80:] = 190  # one vertical edge at x = 80
    rng = np.random.default_rng(1)
    noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
    out = denoise_image(noisy, 5)
    flat = (slice(20, 100), slice(10, 60))
    assert out[flat].std() < noisy[flat].std() / 2.5
    edge_in = float(noisy[:, 82].mean() - noisy[:, 77].mean())
    edge_out = float(out[:, 82].mean() - out[:, 77].mean())
    assert edge_out > 0.95 * edge_in  # the step stays as high
    assert np.abs(out[:, 79:81].astype(float).mean(0) - clean[:, 79:81].mean(0)).max() < 8  # and as sharp
    stronger = denoise_image(noisy, 15)
    assert stronger[flat].std() < out[flat].std()


def test_denoise_stage_backs_up_resumes_and_never_stacks(workspace, media):
    ws = workspace
    ws.frames("dst").mkdir(exist_ok=True)
    frames = decoded_bgr(media / "single_face.mp4")[:4]
    rng = np.random.default_rng(2)
    for i, f in enumerate(frames, 1):
        noisy = np.clip(f + rng.normal(0, 8, f.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(ws.frames("dst") / f"{i:06d}.png"), noisy)
    originals = {p.name: p.read_bytes() for p in ws.frame_files("dst")}

    result = CliRunner().invoke(app, ["video", "denoise", "dst", "-w", str(ws.root), "--factor", "5"])
    assert result.exit_code == 0, result.output
    backup = ws.frames("dst") / "denoise_backup"
    assert {n: (backup / n).read_bytes() for n in originals} == originals
    first = {p.name: p.read_bytes() for p in ws.frame_files("dst")}
    assert all(first[n] != originals[n] for n in originals)

    again = denoise_frames(ws, DenoiseConfig(factor=5))
    assert (again.denoised, again.kept) == (0, 4)
    assert {p.name: p.read_bytes() for p in ws.frame_files("dst")} == first

    # a frame replaced since (e.g. extracted again) becomes the new original
    (ws.frames("dst") / "000002.png").write_bytes(originals["000001.png"])
    res = denoise_frames(ws, DenoiseConfig(factor=5))
    assert (res.denoised, res.kept) == (1, 3) and (backup / "000002.png").read_bytes() == originals["000001.png"]

    # another factor re-denoises from the originals instead of stacking
    denoise_frames(ws, DenoiseConfig(factor=12))
    want = denoise_image(cv2.imread(str(backup / "000003.png")), 12)
    assert np.array_equal(cv2.imread(str(ws.frames("dst") / "000003.png")), want)


def test_extract_stops_on_cancel_and_resumes(workspace, media):
    from contextlib import contextmanager

    from facedouble.errors import Cancelled
    from facedouble.progress import Reporter

    class StopAfter(Reporter):
        @contextmanager
        def task(self, description, total):
            count = [0]

            def advance(n=1):
                count[0] += n
                if count[0] == 20:
                    self.cancel()  # what Ctrl-C / SIGTERM do through stop_on_signals

            yield advance

    ws = dst_workspace(workspace, media, "single_face.mp4")
    with pytest.raises(Cancelled):
        extract_frames(ws, "dst", reporter=StopAfter())
    partial = ws.frame_files("dst")
    assert 0 < len(partial) < 72 and not list(ws.frames("dst").glob("*.tmp"))
    res = extract_frames(ws, "dst")
    assert res.kept == len(partial) and res.total == 72
    every = decoded_bgr(media / "single_face.mp4")
    for p in ws.frame_files("dst")[::7]:
        assert np.abs(cv2.imread(str(p)).astype(int) - every[int(p.stem) - 1].astype(int)).max() <= 1


def test_build_with_a_missing_frame_keeps_the_timeline(merged_ws, media):
    from facedouble.progress import Reporter

    (merged_ws.merged / "000010.png").unlink()
    rep = Reporter()
    res = build_video(merged_ws, VideoBuildConfig(format="mov-alpha"), reporter=rep)
    src, out = streams_info(media / "single_face.mp4"), streams_info(res.path)
    assert out["frames"] == 71 and out["pts"] == src["pts"][:9] + src["pts"][10:]
    assert abs(out["video_duration"] - 2.4) < 1 / 30
    assert any("holds 71 frames" in m for m in rep.messages)


def test_failing_finalize_keeps_the_old_result(merged_ws, monkeypatch):
    from facedouble.errors import ProvenanceError

    (merged_ws.root / "result.mov").write_bytes(b"old")

    def refuse(path, **context):
        raise ProvenanceError("signing failed")

    monkeypatch.setattr(build_mod, "finalize", refuse)
    with pytest.raises(ProvenanceError):
        build_video(merged_ws, VideoBuildConfig(format="mov-alpha"))
    assert (merged_ws.root / "result.mov").read_bytes() == b"old"
    assert sorted(p.name for p in merged_ws.root.iterdir() if p.is_file()) == ["data_dst.mp4", "result.mov"]


def test_built_result_carries_c2pa_and_tag(merged_ws):
    from facedouble.provenance.verify import verify_file

    res = build_video(merged_ws, VideoBuildConfig())
    report = verify_file(res.path)
    assert report.c2pa["state"] == "valid", report.c2pa
    assert report.tag and res.run_id in str(report.tag)
    assert report.marked  # frames are not watermarked here (no merge), so the manifest carries the mark
