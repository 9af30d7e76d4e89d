"""`facedouble util ...`: small tools around the workspace. Each command is a thin wrapper."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import WorkspaceArg, cli_errors, err_console, reporter

group = typer.Typer(help="Utilities for face sets and frames.", no_args_is_help=True)


@group.command("png-to-jpg")
def png_to_jpg(
    folder: Path = typer.Argument(..., help="Folder of aligned PNG faces, e.g. workspace/data_src/aligned."),
    jpeg_quality: int = typer.Option(95, "--jpeg-quality", help="JPEG quality [1..100]."),
    delete_png: bool = typer.Option(False, "--delete-png", help="Delete the PNGs instead of moving them to png_backup/."),
) -> None:
    """Convert aligned PNG faces to JPG, keeping the face record inside; PNGs go to FOLDER/png_backup/."""
    from ..video.images import png_to_jpg as convert

    with cli_errors():
        with reporter() as rep:
            res = convert(folder, jpeg_quality, delete_png=delete_png, reporter=rep)
        where = f"; PNGs moved to {res.backup}" if res.backup else ""
        err_console.print(f"converted {res.converted} face(s) to JPG{where}.")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="util", rich_help_panel="Utilities")


# -- face-set utilities (logic in sort/faceset.py) -----------------------------------------------------

FacesArg = typer.Argument(..., metavar="src|dst|FOLDER",
                          help="src or dst (the aligned faces of that side in the workspace), or any face folder.")


def _faces_folder(target: str, workspace: Path) -> Path:
    from ..workspace import Workspace

    if target in ("src", "dst"):
        return Workspace(workspace).require().aligned(target)  # type: ignore[arg-type]
    return Path(target)


def _faceset(action, target: str, workspace: Path, **kwargs) -> None:
    with cli_errors():
        folder = _faces_folder(target, workspace)
        with reporter() as rep:
            res = action(folder, reporter=rep, **kwargs)
        err_console.print(res.summary(), highlight=False, soft_wrap=True)


@group.command("add-landmarks-debug")
def add_landmarks_debug(target: str = FacesArg, workspace: Path = WorkspaceArg) -> None:
    """Write <name>_debug.jpg beside each face with its landmarks drawn (then delete bad faces, then remove-debug)."""
    from ..sort.faceset import add_landmarks_debug as action

    _faceset(action, target, workspace)


@group.command("remove-debug")
def remove_debug(target: str = FacesArg, workspace: Path = WorkspaceArg) -> None:
    """Delete the *_debug.jpg copies that add-landmarks-debug wrote (never a file holding a face record)."""
    from ..sort.faceset import remove_debug as action

    _faceset(action, target, workspace)


@group.command("recover-original-filename")
def recover_original_filename(target: str = FacesArg, workspace: Path = WorkspaceArg) -> None:
    """Rename each face back to <frame>_<index>.<ext> from its record (undo with `facedouble sort undo`)."""
    from ..sort.faceset import recover_original_filenames as action

    _faceset(action, target, workspace)


@group.command("metadata-save")
def metadata_save(
    target: str = FacesArg, workspace: Path = WorkspaceArg,
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="JSON file to write [default: FOLDER/metadata.json]."),
) -> None:
    """Save the face record of every face in a folder to one JSON file, before editing faces in an image editor."""
    from ..sort.faceset import save_metadata as action

    _faceset(action, target, workspace, file=file)


@group.command("metadata-restore")
def metadata_restore(
    target: str = FacesArg, workspace: Path = WorkspaceArg,
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="JSON file metadata-save wrote [default: FOLDER/metadata.json]."),
) -> None:
    """Put the saved face records back into edited faces, matched by file name (pixels untouched)."""
    from ..sort.faceset import restore_metadata as action

    _faceset(action, target, workspace, file=file)


@group.command("import-dfl")
def import_dfl(
    folder: Path = typer.Argument(..., help="Folder of aligned faces made by the original tool (DeepFaceLab .jpg); only read."),
    workspace: Path = WorkspaceArg,
    side: str = typer.Option("src", "--side", "-s", metavar="src|dst",
                             help="Import into the workspace's data_<side>/aligned/."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the faces into this folder instead of the workspace."),
    no_identity: bool = typer.Option(False, "--no-identity", help="Skip the identity embedding and pose (~0.1 s/face)."),
) -> None:
    """Import the original tool's faces into data_<side>/aligned/ (or --out DIR), leaving FOLDER as it was: its
    pickled metadata is read safely (numpy arrays and plain values only; anything else is refused) and becomes a
    facedouble face record (mask polygons kept); pixels are untouched. Every face is screened for explicit content.
    A name already taken by another face gets a new name (NAME.1.jpg); a face imported before is skipped."""
    from ..choices import Side, values
    from ..errors import MetadataError, OptionError
    from ..faces.dfl import SKIP_ALREADY
    from ..faces.dfl import import_dfl as convert
    from ..workspace import Workspace

    with cli_errors():
        if out is None:
            if side not in values(Side):
                raise OptionError(f"--side must be {' or '.join(values(Side))}, not {side!r}.")
            out = Workspace(workspace).require().aligned(side)  # type: ignore[arg-type]
        with reporter() as rep:
            res = convert(folder, out, identity=not no_identity, reporter=rep)
        if res.skipped and not res.imported and not any(w == SKIP_ALREADY for _, w in res.skipped):
            name, why = res.skipped[0]  # every face refused or unreadable: a script must not go on
            more = f" and {len(res.skipped) - 1} more" if len(res.skipped) > 1 else ""
            raise MetadataError(f"No face was imported from {folder} ({name}: {why}{more}); the files are left as "
                                "they were: give a folder of the original tool's aligned faces.")
        err_console.print(res.summary(), highlight=False, soft_wrap=True)
