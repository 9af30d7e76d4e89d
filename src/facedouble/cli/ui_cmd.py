"""`facedouble ui [WORKSPACE]`: the browser UI on this machine (see docs/ui.md)."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from .common import cli_errors, err_console


def _free_port(host: str, wanted: int) -> int:
    """`wanted` when it is free (0 = any free port), else a free one chosen by the system."""
    for port in ((wanted, 0) if wanted else (0,)):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError(f"no free port on {host}")


def register(app: typer.Typer) -> None:
    @app.command("ui", rich_help_panel="Pipeline")
    def ui(
        workspace: Path = typer.Argument(Path("workspace"), help="Workspace folder."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Anything but 127.0.0.1 lets other "
                                                             "machines reach the app (they still need the token)."),
        port: int = typer.Option(8765, "--port", help="Port (0 = any free port; a busy port picks a free one)."),
        no_browser: bool = typer.Option(False, "--no-browser", help="Print the URL instead of opening a browser."),
    ) -> None:
        """Open the browser UI: stages with live progress, faceset browser, manual extraction, training monitor,
        merge tuner. Local only by default; the URL carries a secret token."""
        with cli_errors():
            import uvicorn

            from ..web.app import create_app
            from ..workspace import Workspace

            ws = Workspace(workspace).require()
            local = host in ("127.0.0.1", "localhost", "::1")
            if not local:
                err_console.print(f"[yellow]warning:[/] listening on {host}: other machines on the network can reach "
                                  "this app; anyone with the URL's token can run stages and read the workspace.")
            chosen = _free_port(host, port)
            application = create_app(ws.root, hosts=() if local else (host,))
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{chosen}/?token={application.state.token}"
            err_console.print(f"facedouble UI for {ws.root}\nopen: {url}\nstop with Ctrl-C", highlight=False, soft_wrap=True)
            if not no_browser:
                import webbrowser

                webbrowser.open(url)
            uvicorn.run(application, host=host, port=chosen, log_level="warning")
