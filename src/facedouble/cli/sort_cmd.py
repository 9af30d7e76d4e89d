"""`facedouble sort src|dst --by METHOD` and `facedouble sort undo src|dst`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..choices import SortMethod, values
from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, WorkspaceArg, build_config, cli_errors, err_console, reporter
from .options import config_options
from ..stages import stage

METHODS_HELP = (
    "blur (sharp first), motion-blur (least smeared first), face-yaw (looking left to right), face-pitch "
    "(looking down to up), hist (similar faces together), hist-dissim (most similar last), brightness, hue, "
    "black (faces cut by the frame edge last), source-rect-size (largest first), origname (frame order), "
    "oneface (faces of frames with several faces to trash), identity (grouped by person), "
    "final (keep --target faces spread over yaw and pitch, sharpest first; the rest to trash)"
)


def _sort(side: str, workspace: Path, config: Optional[Path], interactive: bool, given: dict) -> None:
    sort_faces = stage("sort").function()

    with cli_errors():
        cfg = build_config(stage("sort").config, config, interactive, **given)
        ws = Workspace(workspace)
        with reporter() as rep:
            result = sort_faces(ws, side, cfg, reporter=rep)  # type: ignore[arg-type]
        err_console.print(result.summary(), highlight=False, soft_wrap=True)
        if result.journal is not None:
            err_console.print(f"undo with: facedouble sort undo {side} -w {ws.root}", highlight=False)


def _sort_command(side: str):
    @config_options(stage("sort").config, extra_help={"by": ": " + METHODS_HELP})
    def command(
        workspace: Path = WorkspaceArg,
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
        given: Optional[dict] = None,
    ) -> None:
        _sort(side, workspace, config, interactive, given or {})

    command.__doc__ = (f"Sort data_{side}/aligned: rename the faces 00000_<name>, 00001_<name>, ... in the new "
                       f"order and move rejects to data_{side}/aligned_trash (nothing is deleted; undo with "
                       f"`facedouble sort undo {side}`).")
    return command


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Order aligned faces for curation, move rejects to the trash, undo. "
                             "Methods: " + ", ".join(values(SortMethod)) + ".", no_args_is_help=True)
    group.command("src")(_sort_command("src"))
    group.command("dst")(_sort_command("dst"))

    @group.command("undo")
    def undo(
        side: str = typer.Argument(..., help="src or dst", metavar="src|dst"),
        workspace: Path = WorkspaceArg,
    ) -> None:
        """Put back the names and files of the last sort (or util recover-original-filename); repeat to go further back."""
        from ..errors import OptionError
        undo_sort = stage("sort-undo").function()

        with cli_errors():
            if side not in ("src", "dst"):
                raise OptionError(f"Side must be src or dst, not {side!r}.")
            with reporter() as rep:
                result = undo_sort(Workspace(workspace), side, reporter=rep)  # type: ignore[arg-type]
            err_console.print(result.summary(), highlight=False, soft_wrap=True)

    app.add_typer(group, name="sort", rich_help_panel="2. Faces")
