"""`facedouble xseg ...`: labels (export/import JSON), train, apply, remove, fetch. Logic in facedouble.xseg."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import OptionError
from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, WorkspaceArg, build_config, cli_errors, err_console, reporter
from .options import config_options
from ..stages import stage

SideArg = typer.Argument(..., help="src or dst", metavar="src|dst")


def _side(side: str) -> str:
    if side not in ("src", "dst"):
        raise OptionError(f"Side must be src or dst, not {side!r}.")
    return side


def _say(text: str) -> None:
    err_console.print(text, highlight=False, soft_wrap=True)


labels = typer.Typer(help="XSeg labels (include/exclude polygons in aligned-face pixels) as JSON for scripting.",
                     no_args_is_help=True)


@labels.command("export")
def labels_export(
    side: str = SideArg,
    workspace: Path = WorkspaceArg,
    out: Path = typer.Option(..., "--out", "-o", help="JSON file to write: {\"<face file>\": {\"include\": [[[x, y], ...]], "
                                                        "\"exclude\": [...]}}."),
) -> None:
    """Write the labels of the side's labelled faces to a JSON file."""
    from ..xseg.labels import export_labels, write_labels_json

    with cli_errors():
        data = export_labels(Workspace(workspace).require(), _side(side))
        write_labels_json(data, out)
        _say(f"labels of {len(data)} {side} face(s) written to {out}.")


@labels.command("import")
def labels_import(
    side: str = SideArg,
    labels_json: Path = typer.Argument(..., help="JSON file of labels, as `xseg labels export` writes."),
    workspace: Path = WorkspaceArg,
) -> None:
    """Write the labels of a JSON file into the faces it names (checked first; nothing is written if any is wrong)."""
    from ..xseg.labels import import_labels, read_labels_json

    with cli_errors():
        ws = Workspace(workspace).require()
        data = read_labels_json(labels_json)
        with reporter() as rep:
            res = import_labels(ws, _side(side), data, source=str(labels_json), reporter=rep)
        _say(res.summary())


def _train(workspace: Path, max_minutes: Optional[float], config: Optional[Path], interactive: bool,
           given: dict) -> None:
    train_xseg = stage("xseg-train").function()

    with cli_errors():
        cfg = build_config(stage("xseg-train").config, config, interactive, **given)
        ws = Workspace(workspace).require()
        with reporter() as rep:
            res = train_xseg(ws, cfg, reporter=rep, max_seconds=None if max_minutes is None else max_minutes * 60)
        _say(res.summary())
        _say(f"preview of masks on unlabelled faces: {res.preview}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Trainable face segmentation (XSeg): label occlusions on a few faces, train the mask "
                             "network, apply it to the facesets; merge then uses --mask xseg-dst and the like.",
                        no_args_is_help=True)
    group.add_typer(labels, name="labels")

    @group.command("train")
    @config_options(stage("xseg-train").config)
    def train(
        workspace: Path = WorkspaceArg,
        max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop (and save) after this many minutes."),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
        given: Optional[dict] = None,
    ) -> None:
        """Train the XSeg mask network on the labelled faces of src and dst (resumes; Ctrl-C or SIGTERM saves).
        Writes model/xseg.safetensors, model/xseg.json and model/xseg_preview.jpg."""
        _train(workspace, max_minutes, config, interactive, given or {})

    @group.command("apply")
    def apply(side: str = SideArg, workspace: Path = WorkspaceArg) -> None:
        """Write the trained XSeg mask into each face's record (resumes: faces that have this model's mask are skipped)."""
        apply_xseg = stage("xseg-apply").function()

        with cli_errors():
            ws = Workspace(workspace).require()
            with reporter() as rep:
                res = apply_xseg(ws, _side(side), reporter=rep)
            _say(res.summary())

    @group.command("remove")
    def remove(side: str = SideArg, workspace: Path = WorkspaceArg) -> None:
        """Remove the applied XSeg masks from the side's faces (the labels are kept)."""
        remove_xseg = stage("xseg-remove").function()

        with cli_errors():
            ws = Workspace(workspace).require()
            with reporter() as rep:
                res = remove_xseg(ws, _side(side), reporter=rep)
            _say(res.summary())

    @group.command("fetch")
    def fetch(
        side: str = SideArg,
        workspace: Path = WorkspaceArg,
        out: Path = typer.Option(..., "--out", "-o", help="Folder to copy the labelled faces into."),
    ) -> None:
        """Copy the side's labelled faces (with their records) into a folder."""
        from ..xseg.labels import fetch_labelled

        with cli_errors():
            copied = fetch_labelled(Workspace(workspace).require(), _side(side), out)
            _say(f"copied {len(copied)} labelled {side} face(s) to {out}.")

    app.add_typer(group, name="xseg", rich_help_panel="3. Train")
