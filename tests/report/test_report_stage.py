"""The report stage on the real sample clips: dst against itself, the src person as the result, a workspace
with a blurred "swap" (records, merged_mask, saved settings) through the CLI, and the identity score of
aligned faces that the trainer logs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from facedouble.config import MergeConfig, ReportConfig
from facedouble.faces import align
from facedouble.faces.container import FaceRecord, write_face
from facedouble.faces.regions import hull_mask
from facedouble.report import centroid_from_records, identity_score, make_report
from facedouble.report import scoring as S

DETECTOR = "auto"


def _decode(path: Path, numbers: set[int]) -> dict[int, np.ndarray]:
    """RGB frames of a video by frame number (1 = first), decoded as facedouble decodes them."""
    import av

    from facedouble.video.pixels import frame_to_image

    out = {}
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0), start=1):
            if i in numbers:
                out[i] = frame_to_image(frame, "rgb24")
            if i >= max(numbers):
                break
    return out


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _models() -> S.FaceModels:
    return S.face_models(DETECTOR, "cpu")


def _write_aligned(folder: Path, frames: dict[int, np.ndarray], *, identity: bool, size: int = 256) -> dict[int, np.ndarray]:
    """Aligned whole-face images with records (as the extraction writes them); returns frame landmarks."""
    models = _models()
    out = {}
    for number, frame in frames.items():
        faces = models.find(frame)
        assert faces, f"no face in frame {number}"
        lm = faces[0].landmarks
        m = align.face_matrix(lm, "whole-face", size)
        rec = FaceRecord(face_type="whole-face", size=size, landmarks=align.transform_points(lm, m),
                         source_landmarks=lm, matrix=m, source_filename=f"{number:06d}.png",
                         source_rect=tuple(int(v) for v in faces[0].rect), source_size=(frame.shape[1], frame.shape[0]),
                         detector=faces[0].detector, landmarker="dlib68",
                         identity=models.embed(frame, lm) if identity else None)
        write_face(folder / f"{number:06d}_0.jpg", align.warp_to_face(frame, m, size), rec)
        out[number] = lm
    return out


@pytest.fixture(scope="module")
def clips(media, tmp_path_factory):
    """src: four frames of the woman from late in her clip (not the frames used as a result); result: her first
    72 frames at 3/4 size (dst, the man's clip, has 72 frames)."""
    import cv2

    root = tmp_path_factory.mktemp("report-clips")
    woman = media / "WolfgangLanger_Pexels.mp4"
    frames = _decode(woman, set(range(1, 73)) | {300, 350, 400, 450})
    src_dir = root / "src"
    for n in (300, 350, 400, 450):
        _write_png(src_dir / f"woman_{n}.png", frames[n])
    res_dir = root / "result"
    for n in range(1, 73):
        _write_png(res_dir / f"{n:06d}.png", cv2.resize(frames[n], (480, 270), interpolation=cv2.INTER_AREA))
    return {"src": src_dir, "result": res_dir, "dst": media / "single_face.mp4", "woman": woman}


def _self_contained(html: str) -> None:
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def test_dst_scored_against_itself(clips, tmp_path):
    cfg = ReportConfig(result=str(clips["dst"]), dst=str(clips["dst"]), src=(str(clips["src"]),), every=18,
                       src_faces=4, detector=DETECTOR, device="cpu", out=str(tmp_path / "rep"))
    res = make_report(None, cfg)
    s = res.summary
    assert res.frames_scored == 4
    assert s["identity"]["n"] == 4 and s["identity"]["nearer_src"] == 0.0 and s["identity"]["same_as_src"] == 0.0
    assert s["expression_pose"]["landmark_error_mean"] == 0.0 and s["expression_pose"]["yaw_diff_mean"] == 0.0
    assert s["expression_pose"]["eyes_open_ratio_median"] == 1.0     # his own eyes, as open as they are
    assert s["temporal"]["flicker_ratio"] == 1.0 and s["temporal"]["jitter_ratio"] == 1.0
    assert s["blending"]["background_psnr_db"] == 100.0          # identical: the cap for an infinite PSNR
    assert s["blending"]["seam_delta_e_excess"] == 0.0 and s["detail"]["ratio_to_dst_median"] == 1.0
    assert s["coverage"] == {"frames_scored": 4, "with_dst_face": 4, "swapped": 0, "not_swapped": 4,
                             "result_face_measured": 4, "without_dst_face": 0, "swapped_share": 0.0}
    checks = {c["name"].split(" ")[0]: c["pass"] for c in s["checks"]}
    assert checks == {"identity": False, "face": True, "68-landmark": True, "flicker": True, "background": True}
    assert s["pass"] is False
    data = json.loads(res.json.read_text())                     # strict JSON (no NaN / Infinity)
    assert len(data["frames"]) == 4 and data["frames"][0]["number"] == 1
    assert (tmp_path / "rep" / "report_config.json").is_file()
    html = res.html.read_text()
    _self_contained(html)
    assert "dst face not swapped" in html and html.count("data:image/png;base64,") == 8


def test_marked_dst_keeps_an_untouched_background_and_face_apart_from_the_mark(clips, tmp_path):
    """dst's own frames carrying the provenance mark (a perfect swap, as every output is marked): against raw dst
    the background is about 40 dB (the mark's cost) and the face flickers more (the mark changes from frame to
    frame as the face moves); against dst with the same mark both are untouched, and the checks judge the latter."""
    from facedouble.provenance import mark_frame

    frames = _decode(clips["dst"], set(range(1, 73)))
    res_dir = tmp_path / "marked"
    for n, f in frames.items():
        _write_png(res_dir / f"{n:06d}.png", mark_frame(f, "0badc0de"))
    cfg = ReportConfig(result=str(res_dir), dst=str(clips["dst"]), src=(str(clips["src"]),), every=36,
                       src_faces=4, detector=DETECTOR, device="cpu", out=str(tmp_path / "rep"))
    summary = make_report(None, cfg).summary
    bl = summary["blending"]
    assert 38.0 < bl["background_psnr_db"] < 45.0
    assert bl["background_merge_psnr_db"] >= 60.0
    check = next(c for c in summary["checks"] if c["name"].startswith("background"))
    assert "mark aside" in check["name"] and check["pass"] is True
    tp = summary["temporal"]
    assert tp["runs"] >= 2 and tp["flicker_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert tp["flicker_ratio_unmarked_dst"] > 1.1       # the mark alone; a perfect swap would fail the 1.10 target
    check = next(c for c in summary["checks"] if c["name"].startswith("flicker"))
    assert "mark aside" in check["name"] and check["pass"] is True


def test_src_person_as_result_is_retrieved(clips, tmp_path):
    cfg = ReportConfig(result=str(clips["result"]), dst=str(clips["dst"]), src=(str(clips["src"]),), every=24,
                       src_faces=4, detector=DETECTOR, device="cpu", out=str(tmp_path / "rep"))
    res = make_report(None, cfg)
    ident = res.summary["identity"]
    assert ident["n"] == 3 and ident["nearer_src"] == 1.0 and ident["same_as_src"] == 1.0
    assert ident["mean_src"] < 0.5 < ident["mean_dst"]
    assert res.summary["expression_pose"]["landmark_error_mean"] > 0.2   # her face is not where his was
    data = json.loads(res.json.read_text())
    assert any("resized" in n for n in data["notes"])


@pytest.fixture(scope="module")
def blurred_workspace(media, clips, tmp_path_factory):
    """A workspace whose 'merge' blurred the man's face: dst frames 1-12 with aligned records (no stored
    identity), merged/ and merged_mask/ (the hull), src aligned faces of the woman with stored identities, and
    saved train / merge settings."""
    import cv2

    from facedouble.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("report-ws") / "ws").create()
    frames = _decode(media / "single_face.mp4", set(range(1, 13)))
    for n, f in frames.items():
        _write_png(ws.frames("dst") / f"{n:06d}.png", f)
    lms = _write_aligned(ws.aligned("dst"), frames, identity=False)
    for n, f in frames.items():
        mask = hull_mask(lms[n], f.shape[:2], forehead=0.25)
        blur = cv2.GaussianBlur(f, (0, 0), 3.0)
        merged = np.where(mask[..., None] >= 0.5, blur, f).astype(np.uint8)
        _write_png(ws.merged / f"{n:06d}.png", merged)
        cv2.imwrite(str(ws.merged_mask / f"{n:06d}.png"), ((mask >= 0.5) * 255).astype(np.uint8))
    woman = _decode(clips["woman"], {120, 240, 360})
    _write_aligned(ws.aligned("src"), woman, identity=True)
    (ws.model / "quick96_options.json").write_text(json.dumps({"stage": "TrainConfig", "options": {"model": "quick96",
                                                                                                   "resolution": 96}}))
    (ws.model / "quick96_state.json").write_text(json.dumps({"iteration": 1234, "loss_history": [[0.5, 0.4]] * 200}))
    MergeConfig(mode="overlay").save(ws.frames("dst") / "merge_config.json")
    return ws


def test_workspace_report_through_the_cli(blurred_workspace):
    from typer.testing import CliRunner

    from facedouble.cli import app

    ws = blurred_workspace
    r = CliRunner().invoke(app, ["report", "-w", str(ws.root), "--every", "4", "--detector", DETECTOR,
                                 "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "report.html" in r.output and "fail" in r.output
    out = ws.root / "report"
    data = json.loads((out / "report.json").read_text())
    s = data["summary"]
    assert data["inputs"]["dst faces"] == "data_dst/aligned records"
    assert data["inputs"]["face masks"] == "data_dst/merged_mask"
    assert "3 aligned faces" in data["inputs"]["src"]
    assert s["coverage"]["swapped"] == 3 == s["coverage"]["with_dst_face"]
    assert s["blending"]["background_psnr_db"] == 100.0            # nothing outside the mask was touched
    assert s["detail"]["ratio_to_dst_median"] < 0.5                # the blur took the detail away
    assert s["identity"]["nearer_src"] == 0.0                      # still the man
    assert s["expression_pose"]["landmark_error_mean"] < 0.05      # blurred, but in the same place
    checks = {c["name"].split(" ")[0]: c["pass"] for c in s["checks"]}
    assert checks["face"] is False and checks["background"] is True
    worst = data["worst"]
    assert worst and all(any("detail" in p for p in w["problems"]) for w in worst)
    settings = data["settings"]
    assert settings["model/quick96_options.json"]["options"]["resolution"] == 96
    assert settings["model/quick96_state.json"]["loss_history"]["iterations"] == 200
    assert settings["data_dst/merge_config.json"]["options"]["mode"] == "overlay"
    html = (out / "report.html").read_text()
    _self_contained(html)
    assert "quick96_options.json" in html and html.count("data:image/jpeg;base64,") == 3 * len(worst)


def test_centroids_and_identity_score_of_aligned_faces(clips, blurred_workspace):
    """The training hook: aligned previews of the woman score as src, the man's as dst."""
    ws = blurred_workspace
    src_c = centroid_from_records(ws.aligned("src"))        # stored identities
    dst_c = centroid_from_records(ws.aligned("dst"))        # none stored: computed from the aligned images
    assert src_c.shape == dst_c.shape == (128,)
    assert np.linalg.norm(src_c - dst_c) > 0.6
    models = _models()
    woman = _decode(clips["woman"], {30, 200})
    man = _decode(clips["dst"], {20, 60})

    def previews(frames, face_type, res):
        out = []
        for f in frames.values():
            lm = models.find(f)[0].landmarks
            out.append(align.warp_to_face(f, align.face_matrix(lm, face_type, res), res))
        return out

    her = identity_score(previews(woman, "whole-face", 96), src_c, dst_c, face_type="whole-face")
    him = identity_score(previews(man, "whole-face", 96), src_c, dst_c, face_type="whole-face")
    assert her["n"] == 2 and her["nearer_src"] == 1.0 and len(her["distances"]) == 2
    assert him["nearer_src"] == 0.0 and him["mean_dst"] < him["mean_src"]
    full = identity_score(previews(woman, "full", 128), src_c, dst_c, face_type="full")
    assert full["nearer_src"] == 1.0
    with pytest.raises(Exception, match="No aligned face"):
        centroid_from_records(ws.root / "nowhere")


def test_workspace_result_video_is_preferred(blurred_workspace, tmp_path):
    """result.mp4 (lossy) is scored before data_dst/merged; a backup such as result.1.mp4 is never taken."""
    import shutil

    import av

    from facedouble.report.sources import read_rgb
    from facedouble.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    shutil.copytree(blurred_workspace.root, ws.root)
    shutil.rmtree(ws.root / "report", ignore_errors=True)
    with av.open(str(ws.root / "result.mp4"), "w") as c:
        stream = c.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"crf": "18"}
        for p in sorted(ws.merged.glob("*.png")):
            for packet in stream.encode(av.VideoFrame.from_ndarray(read_rgb(p), format="rgb24")):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    shutil.copyfile(ws.root / "result.mp4", ws.root / "result.1.mp4")
    (ws.root / "result.mp4").rename(ws.root / "result.mov")           # any container named result.*
    res = make_report(ws, ReportConfig(every=6, detector=DETECTOR, device="cpu"))
    data = json.loads(res.json.read_text())
    assert data["inputs"]["result"] == f"{ws.root / 'result.mov'} (video, 12 frames)"
    assert res.html == ws.root / "report" / "report.html"
    s = data["summary"]
    assert s["coverage"]["swapped"] == 2 and s["identity"]["nearer_src"] == 0.0
    assert 30.0 < s["blending"]["background_psnr_db"] < 100.0        # H.264 touched every pixel a little
    assert s["blending"]["background_changed_share"] < 0.01


def test_cli_errors_are_one_sentence(tmp_path, media):
    from typer.testing import CliRunner

    from facedouble.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["report", "-w", str(tmp_path / "missing")])
    assert r.exit_code == 1 and "give -w WORKSPACE, or --result, --dst and --src files" in r.output
    r = runner.invoke(app, ["report", "--result", str(tmp_path / "none.mp4"), "--dst", str(media / "single_face.mp4"),
                            "--src", str(media / "single_face.jpg")])
    assert r.exit_code == 1 and "none.mp4 does not exist" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["report", "--detector", "manual", "-w", str(tmp_path)])
    assert r.exit_code == 1 and "--detector manual cannot score frames" in r.output
    empty = tmp_path / "ws"
    empty.mkdir()
    r = runner.invoke(app, ["report", "-w", str(empty)])
    assert r.exit_code == 1 and "No result in" in r.output
