"""The merge stage end to end on real frames, `merge_frame`, and the `facedouble merge` command."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facedouble.imagefile import read_rgb
from facedouble.choices import MaskMode, MergeMode, values
from facedouble.config import MergeConfig
from facedouble.errors import Cancelled
from facedouble.merge import merger
from facedouble.merge import compose
from facedouble.progress import Reporter
from support.swappers import CastSwapper, IdentitySwapper
from support.workspaces import NO_FACE_RECORD, N_FRAMES, REAL_NO_FACE


def _read(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 and img.shape[2] == 3 else img


def test_overlay_with_identity_model_reproduces_dst(dst_ws, unmarked):
    ws = dst_ws
    cfg = MergeConfig(mode="overlay", mask="dst")
    summary = merger.merge(ws, cfg, swapper=IdentitySwapper(256))
    frames = ws.frame_files("dst")
    assert summary.written == len(frames) == N_FRAMES and summary.copied == 2
    assert sorted(p.name for p in ws.merged.iterdir()) == [p.name for p in frames]  # every frame, same names
    assert unmarked.calls == N_FRAMES and len(unmarked.run_ids) == 1  # each written frame went through the mark
    for i, path in enumerate(frames, start=1):
        dst = _read(path)
        out = _read(ws.merged / path.name)
        mask = _read(ws.merged_mask / (path.stem + ".png"))
        assert mask.dtype == np.uint8 and mask.ndim == 2 and mask.shape == dst.shape[:2]  # 8-bit grey PNG
        if i in (NO_FACE_RECORD, REAL_NO_FACE):
            assert np.array_equal(out, dst) and mask.max() == 0  # no face: copied unchanged
            continue
        assert (mask > 127).mean() > 0.08  # the face region is there
        assert np.array_equal(out[mask == 0], dst[mask == 0])  # exactly the frame outside the face
        err = np.abs(out.astype(float) - dst)[mask > 0]
        assert err.mean() < 2.0 and 10 * np.log10(255 ** 2 / np.mean(err ** 2)) > 32
    saved = MergeConfig.load(ws.config_file(MergeConfig))
    assert saved == cfg


def test_resume_force_and_config_reuse(dst_ws, unmarked):
    ws = dst_ws
    cfg = MergeConfig(mode="overlay", mask="dst", smooth_frames=1)
    sw = IdentitySwapper(128)
    merger.merge(ws, cfg, swapper=sw)
    run = json.loads((ws.frames("dst") / merger.RUN_NAME).read_text())
    again = merger.merge(ws, cfg, swapper=sw)
    assert again.written == 0 and again.skipped == N_FRAMES
    (ws.merged / "000007.png").unlink()
    (ws.merged_mask / "000009.png").unlink()
    part = merger.merge(ws, MergeConfig.load(ws.config_file(MergeConfig)), swapper=sw)
    assert part.written == 2 and part.skipped == N_FRAMES - 2
    assert json.loads((ws.frames("dst") / merger.RUN_NAME).read_text())["run_id"] == run["run_id"]  # same run
    forced = merger.merge(ws, cfg, swapper=sw, force=True)
    assert forced.written == N_FRAMES
    assert json.loads((ws.frames("dst") / merger.RUN_NAME).read_text())["run_id"] != run["run_id"]


def test_real_provenance_mark_is_in_every_frame(dst_ws):
    from facedouble.provenance import mark_frame, watermark

    ws = dst_ws
    merger.merge(ws, MergeConfig(mode="seamless", mask="dst", color_transfer="rct"), swapper=CastSwapper(128))
    run_id = json.loads((ws.frames("dst") / merger.RUN_NAME).read_text())["run_id"]
    for path in ws.frame_files("dst"):
        out = _read(ws.merged / path.name)
        found = watermark.detect(out, search=False)
        assert found.found and found.payload["run_id"] == run_id, path.name
    dst = _read(ws.frames("dst") / f"{REAL_NO_FACE:06d}.png")
    assert np.array_equal(_read(ws.merged / f"{REAL_NO_FACE:06d}.png"), mark_frame(dst, run_id))


def test_cancel_keeps_finished_frames_and_resumes(dst_ws, unmarked):
    ws = dst_ws

    class StopAfter(Reporter):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def task(self, description, total):
            from contextlib import contextmanager

            @contextmanager
            def ctx():
                def advance(k=1):
                    self.n -= k
                    if self.n <= 0:
                        self.cancel()
                yield advance
            return ctx()

    # the old defaults (no jitter suppression, 2 frames of smoothing): a short look-ahead for 12 frames
    cfg = MergeConfig(mode="overlay", mask="dst", batch_size=2, smooth_frames=2, suppress_seamless_jitter=False)
    with pytest.raises(Cancelled):
        merger.merge(ws, cfg, swapper=IdentitySwapper(128), reporter=StopAfter(3))
    done = len(list(ws.merged.iterdir()))
    assert 3 <= done < N_FRAMES
    assert not [p for p in ws.merged.iterdir() if p.name.endswith(".tmp")]
    rest = merger.merge(ws, cfg, swapper=IdentitySwapper(128))
    assert rest.written == N_FRAMES - done


def test_export_alpha_and_debug(dst_ws, unmarked):
    ws = dst_ws
    merger.merge(ws, MergeConfig(mode="overlay", mask="dst", export_alpha=True, debug=True), swapper=CastSwapper(128))
    rgba = cv2.imread(str(ws.merged / "000002.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape[2] == 4
    mask = _read(ws.merged_mask / "000002.png")
    assert np.array_equal(rgba[..., 3], mask)
    debug = sorted(p.name for p in (ws.frames("dst") / merger.DEBUG_DIR).iterdir())
    assert "000002_compare.jpg" in debug and "000002_0_predicted.png" in debug and "000002_0_mask_final.png" in debug
    assert "000002_0_mask_dst.png" in debug


@pytest.fixture(scope="module")
def one_frame(dst_ws_template):
    ws = dst_ws_template
    path = ws.frame_files("dst")[1]
    return read_rgb(path), merger.frame_records(ws)[path.name]


def _face_change(frame, merged):
    m = merged.mask > 127
    return np.abs(merged.image.astype(int) - frame)[m].mean(), np.array_equal(merged.image[merged.mask == 0],
                                                                               frame[merged.mask == 0])


@pytest.mark.parametrize("mode", [m for m in values(MergeMode) if m != "raw"])
def test_every_mode_blends_a_face(one_frame, mode):
    frame, recs = one_frame
    cfg = MergeConfig(mode=mode, mask="dst", color_transfer="rct" if mode == "overlay" else "none")
    out = compose.merge_frame(frame, recs, CastSwapper(128, jitter=0), cfg)
    change, outside_same = _face_change(frame, out)
    assert outside_same and 0.3 < change < 40
    if mode == "hist-match-bw":
        face = out.image[out.mask > 250].astype(int)
        assert np.abs(face[:, 0] - face[:, 1]).mean() < 3  # a grey face


@pytest.mark.parametrize("mask", values(MaskMode))
def test_every_mask_mode(one_frame, mask):
    frame, recs = one_frame
    out = compose.merge_frame(frame, recs, CastSwapper(128, jitter=0), MergeConfig(mode="seamless", mask=mask))
    area = (out.mask > 127).mean()
    assert 0.05 < area < 0.35, area


def test_raw_layers(one_frame):
    frame, recs = one_frame
    sw = CastSwapper(128, jitter=0)
    rgb = compose.merge_frame(frame, recs, sw, MergeConfig(mode="raw", raw="rgb"))
    pred = compose.merge_frame(frame, recs, sw, MergeConfig(mode="raw", raw="predicted"))
    mask = compose.merge_frame(frame, recs, sw, MergeConfig(mode="raw", raw="mask", mask="dst"))
    assert (rgb.mask > 250).sum() > (mask.mask > 250).sum()  # the whole crop square, not the face
    # the face on a flat dark grey (level 16, so that the invisible mark can move it both ways), not the frame
    assert np.all(pred.image[pred.mask == 0] == compose.PREDICTED_BACKGROUND)
    assert pred.image[pred.mask > 250].mean() > 50
    grey = mask.image[mask.mask > 0]
    assert np.abs(grey[:, 0].astype(int) - mask.mask[mask.mask > 0]).max() <= 2


def test_erode_blur_face_scale_and_degrade_change_the_result(one_frame):
    frame, recs = one_frame
    sw = CastSwapper(128, jitter=0)
    base = compose.merge_frame(frame, recs, sw, MergeConfig(mode="overlay", mask="dst"))
    eroded = compose.merge_frame(frame, recs, sw, MergeConfig(mode="overlay", mask="dst", erode=80))
    blurred = compose.merge_frame(frame, recs, sw, MergeConfig(mode="overlay", mask="dst", blur=80))
    bigger = compose.merge_frame(frame, recs, sw, MergeConfig(mode="raw", raw="rgb", face_scale=20))
    square = compose.merge_frame(frame, recs, sw, MergeConfig(mode="raw", raw="rgb"))
    degraded = compose.merge_frame(frame, recs, sw, MergeConfig(mode="overlay", mask="dst", degrade_color=100))
    assert (eroded.mask > 127).sum() < 0.85 * (base.mask > 127).sum()
    soft = lambda m: ((m > 5) & (m < 250)).sum()  # noqa: E731
    assert soft(blurred.mask) > 2 * soft(base.mask)
    assert (bigger.mask > 127).sum() == pytest.approx(1.44 * (square.mask > 127).sum(), rel=0.05)
    assert len(np.unique(degraded.image.reshape(-1, 3), axis=0)) <= 256


def test_merge_frame_caches_the_model_with_state(one_frame):
    frame, recs = one_frame
    sw = IdentitySwapper(128)
    state = compose.MergeState()
    compose.merge_frame(frame, recs, sw, MergeConfig(mode="overlay", mask="dst"), state)
    compose.merge_frame(frame, recs, sw, MergeConfig(mode="seamless", mask="dst", erode=30), state)
    assert sw.calls == 1


def test_cli_merge_and_preview(dst_ws, unmarked, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from facedouble.cli import app

    monkeypatch.setattr(merger, "load_swapper", lambda ws, cfg: IdentitySwapper(128))
    runner = CliRunner()
    ws = dst_ws
    out = tmp_path / "p.png"
    r = runner.invoke(app, ["merge", "-w", str(ws.root), "--frame", "3", "--preview", str(out), "--mode", "overlay"])
    assert r.exit_code == 0, r.output
    assert _read(out).shape == (360, 640, 3) and not any(ws.merged.iterdir())
    r = runner.invoke(app, ["merge", "-w", str(ws.root), "--mode", "seamless", "--color-transfer", "lct",
                            "--erode", "20", "--blur", "30", "--mask", "dst"])
    assert r.exit_code == 0, r.output
    assert len(list(ws.merged.iterdir())) == N_FRAMES
    saved = MergeConfig.load(ws.config_file(MergeConfig))
    assert (saved.mode, saved.color_transfer, saved.erode, saved.blur) == ("seamless", "lct", 20, 30)
    r = runner.invoke(app, ["merge", "-w", str(ws.root), "--erode", "300"])
    assert r.exit_code == 1 and "--erode must be between" in r.output
    r = runner.invoke(app, ["merge", "-w", str(ws.root), "--frame", "99"])
    assert r.exit_code == 1 and "no dst frame number 99" in r.output


def test_merge_with_a_trained_model_from_the_workspace(dst_ws, unmarked):
    """The real loader: a tiny model trained for two iterations in workspace/model, found by `facedouble merge`."""
    import shutil

    from typer.testing import CliRunner

    from facedouble.cli import app
    from facedouble.config import TrainConfig
    from facedouble.train.trainer import train

    ws = dst_ws
    for p in ws.face_files("dst"):
        shutil.copy(p, ws.aligned("src") / p.name)
    train(ws, TrainConfig(model="sae", resolution=64, ae_dims=32, e_dims=8, d_dims=8, d_mask_dims=4, batch_size=2,
                          seed=3, workers=0, preview_every=0, autosave_minutes=0, backup_hours=0), max_iterations=2)
    r = CliRunner().invoke(app, ["merge", "-w", str(ws.root), "--mask", "learned", "--color-transfer", "rct",
                                 "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert len(list(ws.merged.iterdir())) == N_FRAMES
    run = json.loads((ws.frames("dst") / merger.RUN_NAME).read_text())
    assert run["model_resolution"] == 64 and run["status"] == "done"
