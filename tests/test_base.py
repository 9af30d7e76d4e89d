"""Base layer: config validation and JSON, workspace layout and clear, prompts, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facedouble.cli import app
from facedouble.config import DenoiseConfig, MergeConfig, VideoExtractConfig
from facedouble.errors import OptionError
from facedouble.progress import ask_options
from facedouble.workspace import Workspace


def test_config_rejects_out_of_range_and_unknown_choice():
    with pytest.raises(OptionError, match="--factor must be between 1 and 20"):
        DenoiseConfig(factor=21)
    with pytest.raises(OptionError, match="--mode must be one of"):
        MergeConfig(mode="magic")


def test_config_round_trips_json(tmp_path: Path):
    cfg = MergeConfig(mode="overlay", erode=-20, color_transfer="rct")
    path = cfg.save(tmp_path / "merge.json")
    assert json.loads(path.read_text())["options"]["erode"] == -20
    assert MergeConfig.load(path) == cfg
    assert MergeConfig.load(path).override(erode=None, blur=7).blur == 7


def test_prompts_take_defaults_and_answers():
    answers = iter(["", "jpg", "?", "80"])  # fps default, format jpg, help then quality 80
    printed = []
    cfg = ask_options(VideoExtractConfig(), input_fn=lambda _: next(answers), output=printed.append)
    assert cfg.fps is None and cfg.format == "jpg" and cfg.jpeg_quality == 80
    assert "JPEG quality" in printed[0]


def test_prompt_repeats_on_bad_answer():
    answers = iter(["99", "7"])
    printed = []
    cfg = ask_options(DenoiseConfig(), input_fn=lambda _: next(answers), output=printed.append)
    assert cfg.factor == 7 and "between 1 and 20" in printed[0]


def test_workspace_init_and_clear_keeps_videos(tmp_path: Path):
    runner = CliRunner()
    root = tmp_path / "ws"
    assert runner.invoke(app, ["workspace", "init", str(root)]).exit_code == 0
    ws = Workspace(root)
    assert all(p.is_dir() for p in ws.layout())
    (root / "data_src.mp4").write_bytes(b"x")
    (ws.merged / "0001.png").write_bytes(b"x")
    result = runner.invoke(app, ["workspace", "clear", str(root), "--yes"])
    assert result.exit_code == 0, result.output
    assert (root / "data_src.mp4").exists() and not (ws.merged / "0001.png").exists()
    assert ws.merged.is_dir()


def test_clear_missing_workspace_is_one_sentence(tmp_path: Path):
    result = CliRunner().invoke(app, ["workspace", "clear", str(tmp_path / "nope"), "--yes"])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_doctor_lists_components():
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    names = {c["name"]: c["ok"] for c in info["components"]}
    assert names["PyAV"] and names["PyTorch"] and names["dlib models"]


def test_api_exposes_every_stage_function():
    from facedouble import api

    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert api.merge.__module__ == "facedouble.merge.merger"
