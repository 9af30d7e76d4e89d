"""Per-frame merge settings: the config's frame ranges (validation, JSON), the effective options of a frame,
applying options to a frame / the following frames / all frames, and the merge stage honouring the ranges on
real frames (`facedouble merge --config FILE`)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facedouble.config import MERGE_FRAME_OPTIONS, FrameRange, MergeConfig
from facedouble.errors import OptionError
from facedouble.merge import merger
from facedouble.merge.ranges import apply_options, next_change, run_changes
from support.swappers import CastSwapper
from support.workspaces import copy_workspace

RANGES = [{"start": 10, "end": 20, "options": {"erode": 30, "color_transfer": "rct"}},
          {"start": 40, "end": None, "options": {"sharpen": 50, "mode": "overlay"}}]


def _cfg(**kw) -> MergeConfig:
    return MergeConfig.from_dict({"erode": 5, "ranges": RANGES, **kw})


# -- the config -------------------------------------------------------------------------------------------------

def test_effective_options_of_a_frame():
    cfg = _cfg()
    for n in (1, 9, 21, 39):                                        # outside every range: the config's own
        eff = cfg.for_frame(n)
        assert (eff.erode, eff.color_transfer, eff.sharpen, eff.mode, eff.ranges) == (5, "none", 0, "seamless", ())
    for n in (10, 15, 20):                                          # inclusive at both ends
        eff = cfg.for_frame(n)
        assert (eff.erode, eff.color_transfer, eff.sharpen, eff.mode) == (30, "rct", 0, "seamless")
    for n in (40, 41, 100_000):                                     # end null: to the last frame
        eff = cfg.for_frame(n)
        assert (eff.erode, eff.sharpen, eff.mode) == (5, 50, "overlay")
    assert cfg.frame_range(15).label() == "frames 10-20" and cfg.frame_range(9) is None
    assert cfg.for_frame(15) == MergeConfig(erode=30, color_transfer="rct")  # a plain config, nothing else changed


def test_ranges_round_trip_through_the_config_file(tmp_path):
    cfg = _cfg()
    path = cfg.save(tmp_path / "merge_config.json")
    data = json.loads(path.read_text())
    assert data["options"]["ranges"] == [{"start": 10, "end": 20, "options": {"color_transfer": "rct", "erode": 30}},
                                         {"start": 40, "end": None, "options": {"mode": "overlay", "sharpen": 50}}]
    back = MergeConfig.load(path)
    assert back == cfg and back.for_frame(12).erode == 30 and hash(back) == hash(cfg)
    # given out of order: stored sorted
    rev = MergeConfig.from_dict({"ranges": list(reversed(RANGES))})
    assert [r.start for r in rev.ranges] == [10, 40]
    # flags on the command line change the base; the ranges still win on their frames
    over = back.override(erode=9)
    assert over.for_frame(1).erode == 9 and over.for_frame(12).erode == 30


@pytest.mark.parametrize("ranges, words", [
    ([{"start": 5, "end": 3}], "ends before it starts"),
    ([{"start": 1, "end": 10}, {"start": 10, "end": 12}], "frames 1-10 and frames 10-12 overlap"),
    ([{"start": 1, "end": None}, {"start": 50}], "overlap"),
    ([{"start": 2, "options": {"smooth_frames": 1}}], "--smooth-frames, which cannot change per frame"),
    ([{"start": 2, "options": {"export_alpha": True}}], "--export-alpha, which cannot change per frame"),
    ([{"start": 2, "options": {"model": "x"}}], "--model, which cannot change per frame"),
    ([{"start": 2, "options": {"ranges": []}}], "--ranges, which cannot change per frame"),
    ([{"start": 2, "options": {"erodee": 3}}], "unknown option 'erodee'"),
    ([{"start": 2, "end": 4, "options": {"erode": 500}}], "frames 2-4: --erode must be between -200 and 200"),
    ([{"start": 2, "options": {"color_transfer": "best"}}], "--color-transfer must be one of none, rct"),
    ([{"start": 2, "options": {"erode": "20"}}], "--erode must be a whole number"),
    ([{"start": 2, "options": {"debug": 1}}], "--debug must be a true or false"),
    ([{"start": 0}], "must be a frame number (1 or more)"),
    ([{"start": 2, "to": 4}], 'must be {"start": N'),
    ("10-20", '"ranges" must be a list'),
])
def test_bad_ranges_are_refused_with_one_sentence(ranges, words, tmp_path):
    with pytest.raises(OptionError) as e:
        MergeConfig.from_dict({"ranges": ranges})
    assert words in e.value.message and "\n" not in e.value.message
    path = tmp_path / "cfg.json"                                   # from a file: the sentence names the file
    path.write_text(json.dumps({"stage": "MergeConfig", "options": {"ranges": ranges}}))
    with pytest.raises(OptionError) as e:
        MergeConfig.load(path)
    assert e.value.message.startswith(f"In {path}: ") and words in e.value.message


def test_the_face_detail_adjustments_are_per_frame_options():
    assert {"sharpen", "sharpen_mode", "denoise", "bicubic_degrade", "motion_blur"} <= set(MERGE_FRAME_OPTIONS)
    cfg = MergeConfig.from_dict({"ranges": [{"start": 3, "end": 4, "options": {
        "sharpen": -40, "sharpen_mode": "box", "denoise": 200, "bicubic_degrade": 50, "motion_blur": 80}}]})
    eff = cfg.for_frame(4)
    assert (eff.sharpen, eff.sharpen_mode, eff.denoise, eff.bicubic_degrade, eff.motion_blur) == (-40, "box", 200, 50, 80)


# -- applying options from the tuner ---------------------------------------------------------------------------

def test_apply_to_this_frame_splits_the_range_it_is_in():
    cfg = _cfg()
    out = apply_options(cfg, 15, MergeConfig(erode=60, color_transfer="rct"), "frame")
    assert [(r.start, r.end, r.overrides()) for r in out.ranges] == [
        (10, 14, {"erode": 30, "color_transfer": "rct"}), (15, 15, {"erode": 60, "color_transfer": "rct"}),
        (16, 20, {"erode": 30, "color_transfer": "rct"}), (40, None, {"sharpen": 50, "mode": "overlay"})]
    assert out.for_frame(15).erode == 60 and out.for_frame(14).erode == 30 and out.for_frame(16).erode == 30
    # the same options again on a frame outside: a one-frame range; setting it back to the base removes it
    one = apply_options(MergeConfig(), 7, MergeConfig(blur=40), "frame")
    assert [(r.start, r.end, r.overrides()) for r in one.ranges] == [(7, 7, {"blur": 40})]
    assert apply_options(one, 7, MergeConfig(), "frame").ranges == ()


def test_apply_to_following_frames_runs_until_the_next_change():
    cfg = _cfg()
    assert next_change(cfg, 3) == 10 and next_change(cfg, 12) == 21 and next_change(cfg, 25) == 40
    assert next_change(cfg, 45) is None
    # before a range: up to the frame before it starts
    out = apply_options(cfg, 3, MergeConfig(erode=5, denoise=100), "following")
    assert [(r.start, r.end) for r in out.ranges] == [(3, 9), (10, 20), (40, None)]
    assert out.for_frame(9).denoise == 100 and out.for_frame(10).denoise == 0 and out.for_frame(2).denoise == 0
    # inside a range: to its end, the start of the range keeps its options
    out = apply_options(cfg, 12, MergeConfig(erode=5, color_transfer="mkl"), "following")
    assert [(r.start, r.end) for r in out.ranges] == [(10, 11), (12, 20), (40, None)]
    assert out.for_frame(12).color_transfer == "mkl" and out.for_frame(12).erode == 5
    assert out.for_frame(11).color_transfer == "rct" and out.for_frame(21).color_transfer == "none"
    # after the last change: to the last frame
    out = apply_options(MergeConfig(), 30, MergeConfig(mode="overlay"), "following")
    assert [(r.start, r.end) for r in out.ranges] == [(30, None)] and out.for_frame(10**6).mode == "overlay"
    # joining: the frames before a range given its options become part of it
    out = apply_options(cfg, 5, cfg.for_frame(10), "following")
    assert [(r.start, r.end) for r in out.ranges] == [(5, 20), (40, None)]


def test_apply_to_all_frames_and_options_of_the_whole_run():
    cfg = _cfg()
    out = apply_options(cfg, 15, MergeConfig(erode=12, sharpen=20), "all")
    assert out.ranges == () and out.for_frame(15).erode == 12 and out.for_frame(50).sharpen == 20
    # an option that cannot change per frame goes to the whole run whatever the scope; the ranges stay
    wanted = dataclasses_replace(cfg.for_frame(15), smooth_frames=0, erode=31)
    assert run_changes(cfg, wanted) == ["smooth_frames"]
    out = apply_options(cfg, 15, wanted, "frame")
    assert out.smooth_frames == 0 and out.for_frame(1).smooth_frames == 0 and out.erode == 5
    assert out.for_frame(15).erode == 31 and out.for_frame(16).erode == 30
    with pytest.raises(OptionError):
        apply_options(cfg, 15, wanted, "everywhere")
    with pytest.raises(OptionError):
        apply_options(cfg, 0, wanted, "frame")


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


# -- the merge stage --------------------------------------------------------------------------------------------

def _read(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _mask(path):
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


def test_cli_merge_honours_frame_ranges(dst_ws, dst_ws_template, unmarked, monkeypatch, tmp_path):
    """Two ranges on real frames: rct colour transfer on frames 2-3 takes the model's colour cast off the face,
    erode 80 on frames 7-9 shrinks the face's mask; frames away from the ranges are pixel for pixel those of a
    merge without ranges."""
    from typer.testing import CliRunner

    from facedouble.cli import app

    base = {"mode": "overlay", "mask": "dst", "smooth_frames": 1, "suppress_seamless_jitter": False}
    plain = copy_workspace(dst_ws_template, tmp_path / "plain")
    merger.merge(plain, MergeConfig.from_dict(base), swapper=CastSwapper(128))
    monkeypatch.setattr(merger, "load_swapper", lambda ws, cfg: CastSwapper(128))
    cfg_file = tmp_path / "ranges.json"
    cfg_file.write_text(json.dumps({"options": {**base, "ranges": [
        {"start": 2, "end": 3, "options": {"color_transfer": "rct"}},
        {"start": 7, "end": 9, "options": {"erode": 80}}]}}))
    r = CliRunner().invoke(app, ["merge", "-w", str(dst_ws.root), "--config", str(cfg_file)])
    assert r.exit_code == 0, r.output
    saved = MergeConfig.load(dst_ws.config_file(MergeConfig))
    assert [(x.start, x.end) for x in saved.ranges] == [(2, 3), (7, 9)]

    def face_error(ws, n):  # how far the merged face's colours are from dst's, inside the face mask
        name = f"{n:06d}.png"
        inside = _mask(ws.merged_mask / f"{n:06d}.png") > 200
        diff = np.abs(_read(ws.merged / name).astype(float) - _read(ws.frames("dst") / name)).mean(axis=2)
        return float(diff[inside].mean())

    def area(ws, n):
        return int((_mask(ws.merged_mask / f"{n:06d}.png") > 127).sum())

    for n in (2, 3):  # rct: the cast is gone
        assert face_error(dst_ws, n) < 0.5 * face_error(plain, n), n
        assert abs(area(dst_ws, n) - area(plain, n)) < 0.02 * area(plain, n)
    for n in (7, 8, 9):  # erode 80: a clearly smaller face
        assert area(dst_ws, n) < 0.85 * area(plain, n), n
        assert face_error(dst_ws, n) > 0.8 * face_error(plain, n)  # still the model's cast (no rct here)
    for n in (5, 11, 12):  # no range and no neighbour in one: the same frame as without ranges
        name = f"{n:06d}.png"
        assert np.array_equal(_read(dst_ws.merged / name), _read(plain.merged / name)), n
    for n in (1, 6, 10):  # next to a range: the base options (their smoothing stops at the range)
        assert abs(area(dst_ws, n) - area(plain, n)) < 0.03 * area(plain, n), n
        assert face_error(dst_ws, n) > 0.8 * face_error(plain, n), n

    # the preview of one frame uses that frame's options
    out = tmp_path / "p8.png"
    r = CliRunner().invoke(app, ["merge", "-w", str(dst_ws.root), "--config", str(cfg_file), "--frame", "8",
                                 "--preview", str(out)])
    assert r.exit_code == 0, r.output
    dst8 = _read(dst_ws.frames("dst") / "000008.png").astype(float)
    changed = np.abs(_read(out).astype(float) - dst8).max(axis=2) > 8
    plain_changed = np.abs(_read(plain.merged / "000008.png").astype(float) - dst8).max(axis=2) > 8
    assert changed.sum() < 0.85 * plain_changed.sum()


def test_cli_refuses_a_range_with_an_option_of_the_whole_run(dst_ws, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from facedouble.cli import app

    monkeypatch.setattr(merger, "load_swapper", lambda ws, cfg: CastSwapper(128))
    cfg_file = tmp_path / "ranges.json"
    cfg_file.write_text(json.dumps({"options": {"ranges": [{"start": 2, "end": 3, "options": {"smooth_frames": 0}}]}}))
    r = CliRunner().invoke(app, ["merge", "-w", str(dst_ws.root), "--config", str(cfg_file)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "--smooth-frames, which cannot change per frame" in r.output and str(cfg_file.name) in r.output
    assert not any(dst_ws.merged.iterdir()) if dst_ws.merged.is_dir() else True


def test_frame_range_objects_are_plain_values():
    r = FrameRange(3, None, (("erode", 4),))
    assert r.covers(3) and r.covers(10**9) and not r.covers(2)
    assert r.to_dict() == {"start": 3, "end": None, "options": {"erode": 4}} and r.label() == "frames 3 to the last"


def test_changed_ranges_merge_again_only_the_frames_they_change(dst_ws, dst_ws_template, unmarked, tmp_path):
    """A re-run after the per-frame settings changed (the tuner's apply, then Merge all) merges the frames whose
    options changed and the neighbours their smoothing reaches, and gives what a fresh merge gives; a change of
    the run's own options keeps what is merged, as before."""
    from support.swappers import IdentitySwapper

    base = {"mode": "overlay", "mask": "dst", "smooth_frames": 1, "suppress_seamless_jitter": False}
    a = MergeConfig.from_dict(base)
    b = MergeConfig.from_dict({**base, "ranges": [{"start": 7, "end": 8, "options": {"erode": 80}}]})
    c = MergeConfig.from_dict({**base, "ranges": [{"start": 2, "end": 2, "options": {"erode": 80}},
                                                  {"start": 7, "end": 8, "options": {"erode": 80}}]})
    assert merger.merge(dst_ws, a, swapper=IdentitySwapper(128)).written == 12
    assert merger.merge(dst_ws, b, swapper=IdentitySwapper(128)).written == 4       # frames 6-9
    assert merger.merge(dst_ws, b, swapper=IdentitySwapper(128)).written == 0
    assert merger.merge(dst_ws, c, swapper=IdentitySwapper(128)).written == 3       # frames 1-3
    fresh = copy_workspace(dst_ws_template, tmp_path / "fresh")
    merger.merge(fresh, c, swapper=IdentitySwapper(128))
    for p in dst_ws.frame_files("dst"):
        mask = p.stem + ".png"
        assert np.array_equal(_mask(dst_ws.merged_mask / mask), _mask(fresh.merged_mask / mask)), p.name
        assert np.array_equal(_read(dst_ws.merged / p.name), _read(fresh.merged / p.name)), p.name
    assert (_mask(dst_ws.merged_mask / "000007.png") > 127).sum() < 0.85 * (_mask(dst_ws.merged_mask / "000006.png") > 127).sum()
    # the run's own options changed as well: nothing is merged again without --force
    d = MergeConfig.from_dict({**base, "blur": 30, "ranges": []})
    assert merger.merge(dst_ws, d, swapper=IdentitySwapper(128)).written == 0
