"""`facedouble workspace init|clear`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..workspace import Workspace
from .common import cli_errors, err_console


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Create or empty a workspace folder (the layout users of the original tool know).",
                        no_args_is_help=True)

    @group.command("init")
    def init(path: Path = typer.Argument(..., help="Workspace folder to create.")) -> None:
        """Create the workspace layout (existing files are kept)."""
        with cli_errors():
            ws = Workspace(path).create()
            err_console.print(f"workspace ready at {ws.root}; put data_src.mp4 and data_dst.mp4 in it.")

    @group.command("clear")
    def clear(
        path: Path = typer.Argument(..., help="Workspace folder to empty."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
        remove_videos: bool = typer.Option(False, "--remove-videos", help="Also delete data_src.* and data_dst.*."),
    ) -> None:
        """Delete everything in the workspace except data_src.* and data_dst.*, then re-create the layout."""
        with cli_errors():
            ws = Workspace(path).require()
            if not yes:
                what = "everything" if remove_videos else "everything except data_src.* and data_dst.*"
                if not typer.confirm(f"Delete {what} in {ws.root}?", default=False):
                    raise typer.Exit(1)
            removed = ws.clear(keep_videos=not remove_videos)
            err_console.print(f"cleared {len(removed)} item(s) in {ws.root}.")

    app.add_typer(group, name="workspace", rich_help_panel="1. Prepare")
