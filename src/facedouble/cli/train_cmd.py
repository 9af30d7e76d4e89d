"""`facedouble train` and `facedouble export-onnx`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from ..choices import ExportFormat, values
from ..progress import RichReporter, ask_options, stop_on_signals
from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, WorkspaceArg, build_config, cli_errors, err_console
from .options import config_options
from ..stages import stage


def _can_prompt() -> bool:
    """Prompts need a person at a terminal."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


class TerminalKeys:
    """Keys pressed in the terminal, read without blocking and without waiting for Enter (POSIX: cbreak mode +
    select; Windows: msvcrt). Inactive (always "") when stdin is not a terminal."""

    def __init__(self) -> None:
        self.active = False
        self._saved = None

    def __enter__(self) -> "TerminalKeys":
        try:
            if not sys.stdin.isatty():
                return self
        except (AttributeError, ValueError):
            return self
        if os.name == "nt":
            self.active = True
            return self
        import termios
        import tty

        fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)  # keys arrive one by one; Ctrl-C still sends SIGINT
        self.active = True
        return self

    def __call__(self) -> str:
        if not self.active:
            return ""
        if os.name == "nt":
            import msvcrt

            out = ""
            while msvcrt.kbhit():  # type: ignore[attr-defined]
                out += msvcrt.getwch()  # type: ignore[attr-defined]
            return out.replace("\r", "\n")
        import select

        out = ""
        while select.select([sys.stdin], [], [], 0)[0]:
            ch = os.read(sys.stdin.fileno(), 32).decode(errors="ignore")
            if not ch:
                break
            out += ch
        return out

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None


def register(app: typer.Typer) -> None:
    @app.command("train", rich_help_panel="3. Train")
    @config_options(stage("train").config, default_panel="Training", extra_help={
        "device": "; all on a machine with several GPUs starts torchrun itself, one process per GPU"})
    def train_command(
        workspace: Path = WorkspaceArg,
        max_iterations: Optional[int] = typer.Option(None, "--max-iterations", help="Stop after this many iterations of this run.", rich_help_panel="Run"),
        max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop after this many minutes of this run.", rich_help_panel="Run"),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
        given: Optional[dict] = None,
    ) -> None:
        """Train the face-swap model on data_src/aligned and data_dst/aligned; resumes the saved model.

        In a terminal: Enter saves and stops, s saves, p refreshes the preview (model/NAME_preview.png);
        Ctrl-C or SIGTERM also save and stop. Options are asked on a model's first run with -i and saved with
        it; later, a training option given as a flag (--batch-size 16, --target-iteration 5000) changes it and one
        line says what changed; the architecture options stay fixed."""
        from ..errors import Cancelled
        from ..train.checkpoint import model_to_train
        from ..train.options import describe_changes, option_changes, resolve_options
        from ..train.trainer import interactive_fields, resolve_for_prompts
        train = stage("train").function()

        with cli_errors():
            ws = Workspace(workspace).require()
            given = dict(given or {})
            if given.get("model") is None and config is None:  # resume the workspace's model, else the default
                given["model"] = model_to_train(ws.model)
            cfg = build_config(stage("train").config, config, False, **given)
            from ..device import gpu_count
            from ..launcher import launch, should_launch

            if should_launch(cfg.device, gpus := gpu_count()):  # --device all: one process per GPU via torchrun
                raise typer.Exit(launch(sys.argv[1:], gpus))
            if interactive and _can_prompt():
                resolved, existing = resolve_for_prompts(ws, cfg)
                names = interactive_fields(resolved, existing)
                if names:
                    answered = ask_options(resolved, only=names)
                    cfg = cfg.override(**{k: getattr(answered, k) for k in names
                                           if getattr(answered, k) != getattr(resolved, k)})
                else:
                    err_console.print("using the saved options; add --override to change the training options.")
            rep = RichReporter()  # its status line: in place on a terminal, every 30 s in logs
            changes = option_changes(ws.model, cfg)
            if changes and int(os.environ.get("RANK", "0")) == 0:
                resolve_options(ws.model, cfg)  # an architecture option that cannot change is refused first
                rep.info(describe_changes(cfg.model, changes))
            try:
                with stop_on_signals(rep), TerminalKeys() as keys:
                    if keys.active:
                        rep.info("[Enter] save and stop  [s] save  [p] preview  (Ctrl-C also saves)")
                    result = train(ws, cfg, reporter=rep, keys=keys, max_iterations=max_iterations,
                                   max_seconds=max_minutes * 60 if max_minutes else None)
            except Cancelled as e:
                rep.end_line()
                err_console.print(f"[yellow]stopped:[/] {e.message}", highlight=False, soft_wrap=True)
                raise typer.Exit(e.exit_code) from None
            rep.end_line()
            if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 speaks for all
                err_console.print(
                    f"{result.name}: iteration {result.iteration} ({result.iterations_run} this run, "
                    f"{result.samples_per_second:.1f} samples/s), src loss {result.src_loss:.4f}, dst loss "
                    f"{result.dst_loss:.4f}; saved in {result.model_dir}.", highlight=False, soft_wrap=True)

    @app.command("export-onnx", rich_help_panel="3. Train")
    def export_onnx_command(
        workspace: Path = WorkspaceArg,
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="File to write \\[default: model/NAME.onnx, or NAME.dfm with --format dfm]."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Which model of the workspace (default: the newest)."),
        fmt: str = typer.Option("onnx", "--format", "-f",
                                help="onnx: facedouble's own graph (RGB faces of the model's face type); dfm: the "
                                     "file live face-swap apps load (BGR whole-face crops, converted from any face type)."),
    ) -> None:
        """Write the trained model as ONNX (input aligned dst faces NHWC float32 [0, 1]; outputs the swapped
        faces (NHWC) and masks (NHW1)) or as a DFM file (see docs/live.md)."""
        from ..errors import OptionError
        from ..train.export import export_dfm, export_onnx

        with cli_errors():
            ws = Workspace(workspace).require()
            if fmt not in values(ExportFormat):
                raise OptionError(f"--format {fmt!r} is not known; choose one of {', '.join(values(ExportFormat))}.")
            if fmt == "dfm":
                path = export_dfm(ws.model, out, name=model)
            else:
                path = export_onnx(ws.model, out, name=model)
            err_console.print(f"wrote {path}")
