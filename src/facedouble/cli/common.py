"""What every CLI command shares: turning typed errors into one sentence and an exit code,
building a stage config from --config, flags and --interactive, and the Rich reporter."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..config import StageConfig
from ..errors import FaceDoubleError, disk_full, is_disk_full
from ..progress import RichReporter, ask_options, stop_on_signals

C = TypeVar("C", bound=StageConfig)
err_console = Console(stderr=True)

ConfigOpt = typer.Option(None, "--config", help="Re-use the options saved in this JSON config file.")
InteractiveOpt = typer.Option(False, "--interactive", "-i", help="Ask each option (Enter takes the default, ? shows help).")
WorkspaceArg = typer.Option(Path("workspace"), "--workspace", "-w", help="Workspace folder.")


@contextmanager
def cli_errors() -> Iterator[None]:
    """One clear sentence and an exit code for every user error; no traceback unless FACEDOUBLE_DEBUG=1."""
    try:
        yield
    except FaceDoubleError as e:
        err_console.print(f"[bold red]error:[/] {escape(e.message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]stopped.[/] What was finished is kept; run the same command again to resume.")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except OSError as e:
        if os.environ.get("FACEDOUBLE_DEBUG"):
            raise
        if is_disk_full(e):
            _disk_full(e)
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        err_console.print(f"[bold red]error:[/] {escape(str(e.strerror or e))}{escape(where)}; check the path and its permissions.", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except Exception as e:  # noqa: BLE001
        if os.environ.get("FACEDOUBLE_DEBUG"):
            raise
        if is_disk_full(e):  # a library's own error around ENOSPC (safetensors, PyAV)
            _disk_full(e)
        err_console.print(
            f"[bold red]internal error:[/] {type(e).__name__}: {escape(str(e))}. Please report it; "
            "set FACEDOUBLE_DEBUG=1 to see the traceback.", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _disk_full(e: BaseException) -> None:
    """A write that ran out of space somewhere a stage did not catch it: say where when the error knows."""
    filename = getattr(e, "filename", None)
    where = Path(os.fsdecode(filename)).parent if filename else None
    err_console.print(f"[bold red]error:[/] {disk_full(where).message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1) from None


def build_config(cls: type[C], config_file: Optional[Path], interactive: bool, **flags: Any) -> C:
    """Defaults, then a saved config, then flags given on the command line, then prompts."""
    base = cls.load(config_file) if config_file else cls()
    cfg = base.override(**flags)
    if interactive and sys.stdin.isatty():
        cfg = ask_options(cfg)
    return cfg


@contextmanager
def reporter() -> Iterator[RichReporter]:
    """A Rich reporter that turns Ctrl-C and SIGTERM into a clean stop."""
    rep = RichReporter()
    with stop_on_signals(rep):
        yield rep
