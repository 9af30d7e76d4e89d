"""cli/options.py: every stage command's flags come from its config class's fields, so a field is a flag (with its
help, choices, range and default) and a flag is a field, apart from each command's own few options."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from facedouble import config as K
from facedouble.cli import app
from facedouble.errors import OptionError
from facedouble.cli.options import ARCH_PANEL, cli_fields, config_options, field_flags

# command -> (its config class, the options it has that are not config fields)
COMMON = {"--workspace", "-w", "--config", "--interactive", "-i"}
COMMANDS = {
    ("train",): (K.TrainConfig, {"--max-iterations", "--max-minutes"} | COMMON),
    ("merge",): (K.MergeConfig, {"--force", "--frame", "--preview"} | COMMON),
    ("extract",): (K.ExtractConfig, {"--manual-fix-deleted"} | COMMON),
    ("sort", "src"): (K.SortConfig, COMMON),
    ("sort", "dst"): (K.SortConfig, COMMON),
    ("video", "extract"): (K.VideoExtractConfig, COMMON),
    ("video", "cut"): (K.VideoCutConfig, COMMON - {"--workspace", "-w"}),
    ("video", "denoise"): (K.DenoiseConfig, COMMON),
    ("video", "build"): (K.VideoBuildConfig, COMMON),
    ("xseg", "train"): (K.XSegTrainConfig, {"--max-minutes"} | COMMON),
    ("report",): (K.ReportConfig, COMMON),
    ("run",): (K.RunConfig, {"--config", "--interactive", "-i"}),
    ("live",): (K.LiveConfig, {"--workspace", "-w", "--config"}),
}

# Flags whose spelling is not --field-name (or --field-name/--no-field-name): the table of exceptions lives in
# config.py's option(flags=...); this is what users have typed since before the flags were generated.
SPELLINGS = {
    (K.TrainConfig, "write_preview_history"): {"--preview-history", "--no-preview-history"},
    (K.TrainConfig, "adabelief"): {"--adabelief", "--adam"},
    (K.TrainConfig, "remove_gray_border"): {"--remove-gray-border", "--keep-gray-border"},
    (K.TrainConfig, "override_options"): {"--override"},
    (K.TrainConfig, "pretrain"): {"--pretrain"},
    (K.TrainConfig, "from_model"): {"--from"},
    (K.TrainConfig, "model"): {"--model", "-m"},
    (K.TrainConfig, "batch_size"): {"--batch-size", "-b"},
    (K.SortConfig, "by"): {"--by", "-b"},
    (K.SortConfig, "target"): {"--target", "-n"},
    (K.SortConfig, "trash_others"): {"--trash-others", "--keep-others"},
    (K.ExtractConfig, "detector"): {"--detector", "-d"},
    (K.VideoCutConfig, "start"): {"--from"},
    (K.VideoCutConfig, "end"): {"--to"},
    (K.VideoBuildConfig, "input_dir"): {"--input"},
    (K.XSegTrainConfig, "target_iteration"): {"--target-iteration", "-n"},
    (K.ReportConfig, "every"): {"--every", "-n"},
    (K.ReportConfig, "out"): {"--out", "-o"},
    (K.LiveConfig, "source"): {"--source", "-s"},
    (K.LiveConfig, "out"): {"--out", "-o"},
}


def _command(path: tuple[str, ...]):
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def _names(param) -> set[str]:
    return set(param.opts) | set(param.secondary_opts)


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_every_field_is_a_flag_and_every_flag_a_field(path):
    cls, own = COMMANDS[path]
    params = {p.name: p for p in _command(path).params if p.param_type_name == "option"}
    fields = {f.name for f in cli_fields(cls)}
    assert fields <= set(params), f"fields without a flag: {sorted(fields - set(params))}"
    extra = set().union(*(_names(p) for n, p in params.items() if n not in fields))
    assert extra == own, f"flags without a field: {sorted(extra - own)}; missing own options: {sorted(own - extra)}"
    for name in fields:
        dashed = name.replace("_", "-")
        default = {f"--{dashed}", f"--no-{dashed}"} if params[name].secondary_opts else {f"--{dashed}"}
        assert _names(params[name]) == SPELLINGS.get((cls, name), default), name


def test_only_fields_without_a_command_line_form_are_left_out():
    left_out = {(cls.__name__, f.name) for cls, _own in COMMANDS.values() for f in dataclasses.fields(cls)
                if f not in cli_fields(cls)}
    assert left_out == {("MergeConfig", "ranges")}


def test_train_help_panels_and_defaults():
    out = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).output
    panels = {p.name: p.rich_help_panel for p in _command(("train",)).params}
    assert panels["resolution"] == panels["learn_mask"] == ARCH_PANEL
    assert panels["batch_size"] == panels["adabelief"] == panels["seed"] == "Training"
    assert panels["device"] == panels["pretrain"] == panels["from_model"] == panels["max_minutes"] == "Run"
    for title in ("Architecture (first run)", "Training", "Run"):
        assert f"─ {title} ─" in out
    # defaults shown (escaped from Rich markup); None ("the preset's value") shows none
    assert "[default: liae192]" in out and "[default: amp]" in out and "[default: 15]" in out
    line = next(x for x in out.splitlines() if "│ --batch-size" in x)
    assert "[1..512]" in line and "default:" not in line


def test_merge_help_lists_choices_once_and_defaults():
    out = " ".join(CliRunner().invoke(app, ["merge", "--help"], env={"COLUMNS": "400"}).output.split())
    assert "Blend mode (overlay, hist-match, hist-match-bw, seamless, seamless-hist-match, raw) [default: seamless]" in out
    assert "[default: no-debug]" in out and "(data_dst/merged_debug)" in out
    # the help already names gaussian and box: no second list
    assert "(smooth) or box (coarser, more ringing) [default: gaussian]" in out


def _probe(cls, **kw):
    """A one-command app whose command returns what the generated flags gave."""
    seen = {}
    probe = typer.Typer()

    @probe.command()
    @config_options(cls, **kw)
    def cmd(workspace: Path = typer.Option(Path("w"), "--workspace"), force: bool = typer.Option(False, "--force"),
            given: Optional[dict] = None) -> None:
        seen.update(given or {}, force=force, workspace=workspace)

    return probe, seen


def test_flags_reach_the_config_with_its_types():
    probe, seen = _probe(K.TrainConfig)
    res = CliRunner().invoke(probe, ["--adam", "--preview-history", "--keep-gray-border", "--pretrain", "--from",
                                     "pre/model", "-b", "4", "--lr", "0.0002", "--color-transfer", "mkl", "--force"])
    assert res.exit_code == 0, res.output
    cfg = K.TrainConfig().override(**{k: v for k, v in seen.items() if k not in ("force", "workspace")})
    assert (cfg.adabelief, cfg.write_preview_history, cfg.remove_gray_border, cfg.pretrain) == (False, True, False, True)
    assert cfg.from_model == "pre/model" and isinstance(seen["from_model"], str)
    assert (cfg.batch_size, cfg.lr, cfg.color_transfer) == (4, 0.0002, "mkl")
    assert seen["force"] is True and seen["workspace"] == Path("w")
    # nothing given: every field None (the saved config or the defaults stay)
    probe, seen = _probe(K.TrainConfig)
    assert CliRunner().invoke(probe, []).exit_code == 0
    assert {k for k, v in seen.items() if v is not None} == {"force", "workspace"}


def test_a_repeated_flag_gives_a_tuple():
    probe, seen = _probe(K.ReportConfig)
    assert CliRunner().invoke(probe, ["--src", "a.mp4", "--src", "b", "-n", "5"]).exit_code == 0
    assert seen["src"] == ("a.mp4", "b") and seen["every"] == 5 and seen["out"] is None


def test_a_new_field_is_a_new_flag_with_nothing_else_written():
    @dataclasses.dataclass(frozen=True)
    class Scratch(K.StageConfig):
        glow: int = K.option(3, "Glow of the face", lo=0, hi=9)
        tint: K.C.SharpenMode = K.option("box", "Tint kernel")
        calm: bool = K.option(True, "Calm the face")

    probe, seen = _probe(Scratch)
    out = " ".join(CliRunner().invoke(probe, ["--help"], env={"COLUMNS": "200"}).output.split())
    assert "--glow" in out and "Glow of the face [0..9] [default: 3]" in out
    assert "Tint kernel (box, gaussian) [default: box]" in out and "--calm --no-calm" in out
    assert CliRunner().invoke(probe, ["--glow", "7", "--no-calm", "--tint", "gaussian"]).exit_code == 0
    assert (seen["glow"], seen["calm"], seen["tint"]) == (7, False, "gaussian")


def test_bad_choice_or_range_is_one_sentence_from_the_config_class(tmp_path):
    res = CliRunner().invoke(app, ["merge", "-w", str(tmp_path), "--mode", "bogus"])
    text = " ".join(res.output.split())
    assert res.exit_code == OptionError("x").exit_code != 0, text
    assert text.startswith("error: --mode must be one of overlay, hist-match") and "Traceback" not in text
    res = CliRunner().invoke(app, ["sort", "src", "-w", str(tmp_path), "-n", "0"])
    text = " ".join(res.output.split())
    assert res.exit_code == OptionError("x").exit_code and "error: --target must be between 1 and 1e+06, not 0." in text


def test_the_config_class_names_the_flag_users_type():
    assert K.VideoCutConfig.flag("start") == "--from" and K.TrainConfig.flag("from_model") == "--from"
    assert K.TrainConfig.flag("write_preview_history") == "--preview-history"
    assert K.TrainConfig.flag("batch_size") == "--batch-size" and K.MergeConfig.flag("sharpen_mode") == "--sharpen-mode"


def test_extra_help_for_a_field_that_is_not_there_is_refused():
    with pytest.raises(TypeError, match="nope"):
        field_flags(K.MergeConfig, extra_help={"nope": "!"})


def test_the_ui_names_the_same_flags_and_paths():
    from facedouble.web.forms import PATH_OPTIONS, option_schema

    flags = {o["name"]: o["flag"] for o in option_schema(K.TrainConfig)}
    assert flags["write_preview_history"] == "--preview-history" and flags["from_model"] == "--from"
    for cls, names in PATH_OPTIONS.items():   # what the UI confines to the workspace, the CLI takes as a path
        assert names <= {f.name for f in dataclasses.fields(cls) if f.metadata.get("path")}, cls.__name__


@pytest.mark.parametrize("argv, name", [(["xseg", "apply", "dst"], "xseg-apply"), (["sort", "undo", "src"], "sort-undo"),
                                         (["merge"], "merge")])
def test_stage_commands_run_the_function_of_the_stage_table(tmp_path, monkeypatch, argv, name):
    """The CLI takes a stage's function from `stages.py` (as the API, `run` and the UI do): a row pointing at
    another function is what the command runs."""
    from facedouble import stages
    from facedouble.workspace import Workspace

    ws = Workspace(tmp_path / "ws").create()
    calls = []

    class Result:
        written = skipped = copied = 0

        def summary(self):
            return "fake stage ran"

    def fake(*args, **kwargs):
        calls.append(args)
        return Result()

    row = dataclasses.replace(stages.stage(name), load=lambda: fake)
    monkeypatch.setitem(stages._BY_NAME, name, row)
    res = CliRunner().invoke(app, [*argv, "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    assert len(calls) == 1 and calls[0][0].root == ws.root
