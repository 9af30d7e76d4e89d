"""`facedouble doctor`: version, device, and whether each optional component works."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from .. import doctor
from .common import cli_errors


def register(app: typer.Typer) -> None:
    @app.command("doctor", rich_help_panel="Check")
    def doctor_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Print the version, the device that would be used, and which components import."""
        with cli_errors():
            info = doctor.summary()
            if as_json:
                print(json.dumps(info, indent=2))
                return
            console = Console()
            console.print(f"facedouble {info['version']}  device: {info['device']}")
            table = Table("component", "for", "status")
            for c in info["components"]:
                table.add_row(c["name"], c["purpose"], ("[green]ok[/] " if c["ok"] else "[red]missing[/] ") + c["detail"])
            console.print(table)
