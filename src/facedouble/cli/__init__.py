"""The `facedouble` command: one command per stage, listed in pipeline order.

Each stage's commands live in their own module with a `register(app)` function; this file only
orders them. Commands hold no logic: they build a config and call the stage function.
"""

from __future__ import annotations

import importlib

import typer
import typer.core

# Top-level commands in pipeline order (groups and plain commands mixed); unknown names go last.
PIPELINE_ORDER = ("workspace", "video", "extract", "sort", "xseg", "train", "export-onnx", "merge", "live", "run", "report",
                  "verify", "ui", "util", "doctor")


class _PipelineGroup(typer.core.TyperGroup):
    def list_commands(self, ctx):  # noqa: D401 - click API
        names = list(self.commands)
        rank = {n: i for i, n in enumerate(PIPELINE_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))


app = typer.Typer(
    cls=_PipelineGroup,
    name="facedouble",
    help=(
        "Replace a face in a video with another person's face, for consented work (film, VFX, satire, "
        "research, anonymisation). Every output is marked as AI-generated.\n\n"
        "Stages in pipeline order: workspace -> video extract -> extract -> sort -> train -> merge -> video build."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Pipeline order. Each module defines register(app).
COMMAND_MODULES = (
    "workspace_cmd",
    "video_cmd",
    "extract_cmd",
    "sort_cmd",
    "xseg_cmd",
    "train_cmd",
    "merge_cmd",
    "live_cmd",
    "run_cmd",
    "util_cmd",
    "provenance_cmd",
    "report_cmd",
    "ui_cmd",
    "doctor_cmd",
)

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _e:  # a stage not built yet; its module does not exist
        if _e.name != f"{__name__}.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    from ..allocator import tune
    from ..native_logs import silence

    tune()
    silence()  # mediapipe's native log lines (here and in worker processes) stay out of the output
    app()
