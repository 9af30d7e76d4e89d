"""`facedouble train` and `facedouble export-onnx`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from ..choices import ExportFormat, values
from ..config import TrainConfig
from ..progress import RichReporter, ask_options, stop_on_signals
from ..workspace import Workspace
from .common import ConfigOpt, InteractiveOpt, WorkspaceArg, build_config, cli_errors, err_console

H = TrainConfig.field_help


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
    def train_command(
        workspace: Path = WorkspaceArg,
        model: Optional[str] = typer.Option(None, "--model", "-m", help=H("model") + " [default: cpu192]", show_default=False),
        # architecture (first run only)
        resolution: Optional[int] = typer.Option(None, "--resolution", help=H("resolution"), rich_help_panel="Architecture (first run)"),
        face_type: Optional[str] = typer.Option(None, "--face-type", help=H("face_type"), rich_help_panel="Architecture (first run)"),
        archi: Optional[str] = typer.Option(None, "--archi", help=H("archi"), rich_help_panel="Architecture (first run)"),
        ae_dims: Optional[int] = typer.Option(None, "--ae-dims", help=H("ae_dims"), rich_help_panel="Architecture (first run)"),
        e_dims: Optional[int] = typer.Option(None, "--e-dims", help=H("e_dims"), rich_help_panel="Architecture (first run)"),
        d_dims: Optional[int] = typer.Option(None, "--d-dims", help=H("d_dims"), rich_help_panel="Architecture (first run)"),
        d_mask_dims: Optional[int] = typer.Option(None, "--d-mask-dims", help=H("d_mask_dims"), rich_help_panel="Architecture (first run)"),
        learn_mask: Optional[bool] = typer.Option(None, "--learn-mask/--no-learn-mask", help=H("learn_mask"), rich_help_panel="Architecture (first run)"),
        residual_blocks: Optional[bool] = typer.Option(None, "--residual-blocks/--no-residual-blocks", help=H("residual_blocks"), rich_help_panel="Architecture (first run)"),
        lightweight_encoder: Optional[bool] = typer.Option(None, "--lightweight-encoder/--no-lightweight-encoder", help=H("lightweight_encoder"), rich_help_panel="Architecture (first run)"),
        multiscale_decoder: Optional[bool] = typer.Option(None, "--multiscale-decoder/--no-multiscale-decoder", help=H("multiscale_decoder"), rich_help_panel="Architecture (first run)"),
        remove_gray_border: Optional[bool] = typer.Option(None, "--remove-gray-border/--keep-gray-border", help=H("remove_gray_border"), rich_help_panel="Architecture (first run)"),
        double_resolution: Optional[bool] = typer.Option(None, "--double-resolution/--no-double-resolution", help=H("double_resolution"), rich_help_panel="Architecture (first run)"),
        # training (changeable with --override)
        batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help=H("batch_size"), rich_help_panel="Training"),
        target_iteration: Optional[int] = typer.Option(None, "--target-iteration", help=H("target_iteration"), rich_help_panel="Training"),
        write_preview_history: Optional[bool] = typer.Option(None, "--preview-history/--no-preview-history", help=H("write_preview_history"), rich_help_panel="Training"),
        uniform_yaw: Optional[bool] = typer.Option(None, "--uniform-yaw/--no-uniform-yaw", help=H("uniform_yaw"), rich_help_panel="Training"),
        random_flip: Optional[bool] = typer.Option(None, "--random-flip/--no-random-flip", help=H("random_flip"), rich_help_panel="Training"),
        src_scale_mod: Optional[int] = typer.Option(None, "--src-scale-mod", help=H("src_scale_mod"), rich_help_panel="Training"),
        random_warp: Optional[bool] = typer.Option(None, "--random-warp/--no-random-warp", help=H("random_warp"), rich_help_panel="Training"),
        pixel_loss: Optional[bool] = typer.Option(None, "--pixel-loss/--no-pixel-loss", help=H("pixel_loss"), rich_help_panel="Training"),
        face_style_power: Optional[float] = typer.Option(None, "--face-style-power", help=H("face_style_power"), rich_help_panel="Training"),
        bg_style_power: Optional[float] = typer.Option(None, "--bg-style-power", help=H("bg_style_power"), rich_help_panel="Training"),
        eyes_mouth_priority: Optional[bool] = typer.Option(None, "--eyes-mouth-priority/--no-eyes-mouth-priority", help=H("eyes_mouth_priority"), rich_help_panel="Training"),
        blur_out_mask: Optional[bool] = typer.Option(None, "--blur-out-mask/--no-blur-out-mask", help=H("blur_out_mask"), rich_help_panel="Training"),
        color_transfer: Optional[str] = typer.Option(None, "--color-transfer", help=H("color_transfer"), rich_help_panel="Training"),
        random_hsv_power: Optional[float] = typer.Option(None, "--random-hsv-power", help=H("random_hsv_power"), rich_help_panel="Training"),
        lr: Optional[float] = typer.Option(None, "--lr", help=H("lr"), rich_help_panel="Training"),
        lr_dropout: Optional[bool] = typer.Option(None, "--lr-dropout/--no-lr-dropout", help=H("lr_dropout"), rich_help_panel="Training"),
        adabelief: Optional[bool] = typer.Option(None, "--adabelief/--adam", help=H("adabelief"), rich_help_panel="Training"),
        clip_grad: Optional[bool] = typer.Option(None, "--clip-grad/--no-clip-grad", help=H("clip_grad"), rich_help_panel="Training"),
        optimizer_mode: Optional[str] = typer.Option(None, "--optimizer-mode", help=H("optimizer_mode"), rich_help_panel="Training"),
        gan_power: Optional[float] = typer.Option(None, "--gan-power", help=H("gan_power"), rich_help_panel="Training"),
        gan_patch_size: Optional[int] = typer.Option(None, "--gan-patch-size", help=H("gan_patch_size"), rich_help_panel="Training"),
        gan_dims: Optional[int] = typer.Option(None, "--gan-dims", help=H("gan_dims"), rich_help_panel="Training"),
        true_face_power: Optional[float] = typer.Option(None, "--true-face-power", help=H("true_face_power"), rich_help_panel="Training"),
        seed: Optional[int] = typer.Option(None, "--seed", help=H("seed"), rich_help_panel="Training"),
        override: bool = typer.Option(False, "--override", help="With -i on an existing model, ask its training options "
                                      "again (a training option given as a flag always applies; architecture "
                                      "options stay fixed)."),
        # run settings
        pretrain: bool = typer.Option(False, "--pretrain", help=H("pretrain"), rich_help_panel="Run"),
        faceset: Optional[Path] = typer.Option(None, "--faceset", help=H("faceset"), rich_help_panel="Run"),
        from_model: Optional[Path] = typer.Option(None, "--from", help=H("from_model"), rich_help_panel="Run"),
        device: Optional[str] = typer.Option(None, "--device", help=H("device") + "; all on a machine with several GPUs starts torchrun "
                                      "itself, one process per GPU [default: auto]", rich_help_panel="Run"),
        amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help=H("amp") + " [default: amp]", rich_help_panel="Run"),
        channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help=H("channels_last"), rich_help_panel="Run"),
        workers: Optional[int] = typer.Option(None, "--workers", help=H("workers") + " [default: 1]", rich_help_panel="Run"),
        threads: Optional[int] = typer.Option(None, "--threads", help=H("threads") + " [default: 0]", rich_help_panel="Run"),
        autosave_minutes: Optional[float] = typer.Option(None, "--autosave-minutes", help=H("autosave_minutes") + " [default: 15]", rich_help_panel="Run"),
        backup_hours: Optional[float] = typer.Option(None, "--backup-hours", help=H("backup_hours") + " [default: 2]", rich_help_panel="Run"),
        backups_kept: Optional[int] = typer.Option(None, "--backups-kept", help=H("backups_kept") + " [default: 3]", rich_help_panel="Run"),
        preview_every: Optional[int] = typer.Option(None, "--preview-every", help=H("preview_every") + " [default: 200]", rich_help_panel="Run"),
        max_iterations: Optional[int] = typer.Option(None, "--max-iterations", help="Stop after this many iterations of this run.", rich_help_panel="Run"),
        max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop after this many minutes of this run.", rich_help_panel="Run"),
        config: Optional[Path] = ConfigOpt,
        interactive: bool = InteractiveOpt,
    ) -> None:
        """Train the face-swap model on data_src/aligned and data_dst/aligned; resumes the saved model.

        In a terminal: Enter saves and stops, s saves, p refreshes the preview (model/NAME_preview.png);
        Ctrl-C or SIGTERM also save and stop. Options are asked on a model's first run with -i and saved with
        it; later, a training option given as a flag (--batch-size 16, --target-iteration 5000) changes it and one
        line says what changed; the architecture options stay fixed."""
        from ..errors import Cancelled
        from ..train.checkpoint import describe_changes, option_changes, resolve_options
        from ..train.trainer import interactive_fields, resolve_for_prompts, train

        with cli_errors():
            ws = Workspace(workspace).require()
            cfg = build_config(
                TrainConfig, config, False, model=model, resolution=resolution, face_type=face_type, archi=archi,
                ae_dims=ae_dims, e_dims=e_dims, d_dims=d_dims, d_mask_dims=d_mask_dims, learn_mask=learn_mask,
                residual_blocks=residual_blocks, lightweight_encoder=lightweight_encoder,
                multiscale_decoder=multiscale_decoder, remove_gray_border=remove_gray_border,
                double_resolution=double_resolution, batch_size=batch_size,
                target_iteration=target_iteration, write_preview_history=write_preview_history,
                uniform_yaw=uniform_yaw, random_flip=random_flip, src_scale_mod=src_scale_mod,
                random_warp=random_warp, pixel_loss=pixel_loss, face_style_power=face_style_power,
                bg_style_power=bg_style_power, eyes_mouth_priority=eyes_mouth_priority, blur_out_mask=blur_out_mask,
                color_transfer=color_transfer, random_hsv_power=random_hsv_power, lr=lr, lr_dropout=lr_dropout, adabelief=adabelief, clip_grad=clip_grad,
                optimizer_mode=optimizer_mode, gan_power=gan_power, gan_patch_size=gan_patch_size,
                gan_dims=gan_dims, true_face_power=true_face_power, seed=seed,
                override_options=override or None, device=device, amp=amp, channels_last=channels_last, workers=workers,
                threads=threads, autosave_minutes=autosave_minutes, backup_hours=backup_hours,
                backups_kept=backups_kept, preview_every=preview_every, pretrain=pretrain or None,
                faceset=None if faceset is None else str(faceset),
                from_model=None if from_model is None else str(from_model))
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
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="File to write [default: model/NAME.onnx, or NAME.dfm with --format dfm]."),
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
