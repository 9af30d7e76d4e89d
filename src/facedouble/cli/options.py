"""A stage command's flags, made from its config class's fields (config.py's `option(...)` metadata: help, range,
choices, flag spelling, help panel, path), so a new config field is a new flag with nothing written here.

    @app.command("merge")
    @config_options(MergeConfig, extra_help={"debug": " (data_dst/merged_debug)"})
    def merge_command(workspace: Path = WorkspaceArg, force: bool = ..., config=ConfigOpt, interactive=InteractiveOpt,
                      given: dict = None) -> None:
        cfg = build_config(MergeConfig, config, interactive, **given)

The command's own parameters stay as written; the fields' flags come after its leading arguments (and
--workspace); `given` receives {field: value} for every flag (None = not given). Choices and ranges are checked
by the config class, as for a config file, so a bad value is one sentence and the usual exit code."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import typing
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional

import typer
from typer.models import ArgumentInfo

from ..config import StageConfig, literal_choices

ARCH_PANEL = "Architecture (first run)"
GIVEN = "given"   # the decorated function's parameter that receives the fields' values


@dataclasses.dataclass(frozen=True)
class FieldFlag:
    """One config field as a command-line option."""

    name: str
    decls: tuple[str, ...]        # "--name" (+ short), or "--on/--off" for a bool pair
    kind: str                     # "value", "pair" (--x/--no-x), "switch" (one flag: given = True), "many" (repeatable)
    base: type                    # int, float, str, bool or Path
    help: str
    panel: Optional[str]

    @property
    def long(self) -> str:
        return self.decls[0].split("/")[0]

    def option_names(self) -> tuple[str, ...]:
        """Every spelling that reaches this field (both sides of a pair)."""
        out: list[str] = []
        for d in self.decls:
            out.extend(d.split("/"))
        return tuple(out)

    def parameter(self) -> inspect.Parameter:
        if self.kind == "switch":
            default = typer.Option(False, *self.decls, help=self.help, rich_help_panel=self.panel)
            annotation: Any = bool
        else:
            default = typer.Option(None, *self.decls, help=self.help, rich_help_panel=self.panel, show_default=False)
            annotation = Optional[List[self.base]] if self.kind == "many" else Optional[self.base]  # type: ignore[name-defined]
        return inspect.Parameter(self.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                 annotation=annotation)

    def to_config(self, value: Any) -> Any:
        """The value as the config class takes it; None when the flag was not given."""
        if value is None or (self.kind == "switch" and value is False):
            return None
        if self.kind == "many":
            return tuple(str(v) for v in value) or None
        return str(value) if isinstance(value, Path) else value


def cli_fields(cls: type[StageConfig]) -> list[dataclasses.Field]:
    """The fields of `cls` that have a flag (all but those marked `cli=False`)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


def field_flags(cls: type[StageConfig], *, default_panel: Optional[str] = None,
                extra_help: Optional[Mapping[str, str]] = None) -> list[FieldFlag]:
    """Every CLI-exposed field of `cls` as a FieldFlag, in field order. `extra_help` adds command-specific words
    after a field's help; `default_panel` is the help panel of fields whose metadata names none."""
    extra_help = dict(extra_help or {})
    hints = typing.get_type_hints(cls)
    out = []
    for f in cli_fields(cls):
        kind, base, choices = _kind(cls, f, hints[f.name])
        decls = tuple(f.metadata.get("flags") or ())
        if not decls:
            dashed = f.name.replace("_", "-")
            decls = (f"--{dashed}/--no-{dashed}",) if kind == "pair" else (f"--{dashed}",)
        elif kind == "pair" and "/" not in decls[0]:
            kind = "switch"
        panel = f.metadata.get("panel") or (ARCH_PANEL if f.metadata.get("fixed") else default_panel)
        text = cls.field_help(f.name) + extra_help.pop(f.name, "")
        if choices and not all(re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", text) for c in choices):
            text += " (" + ", ".join(choices) + ")"
        if kind == "many":
            text += "; repeat for several"
        text += _default_text(f, kind, decls)
        out.append(FieldFlag(f.name, decls, kind, base, text, panel))
    if extra_help:
        raise TypeError(f"extra_help names {', '.join(extra_help)}, which are not CLI fields of {cls.__name__}")
    return out


def _kind(cls: type, f: dataclasses.Field, hint: Any) -> tuple[str, type, tuple[str, ...] | None]:
    choices = literal_choices(hint)
    tp = hint
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else tp
    path = bool(f.metadata.get("path"))
    if choices:
        return "value", str, choices
    if tp is bool:
        return "pair", bool, None
    if tp in (int, float):
        return "value", tp, None
    if tp is str:
        return "value", Path if path else str, None
    if typing.get_origin(tp) is tuple and typing.get_args(tp) == (str, Ellipsis):
        return "many", Path if path else str, None
    raise TypeError(f"{cls.__name__}.{f.name} ({hint}) has no command-line form; give it cli=False in its option().")


def _default_text(f: dataclasses.Field, kind: str, decls: tuple[str, ...]) -> str:
    value = f.default
    if value is None or value == "" or value == () or kind == "switch" or value is dataclasses.MISSING:
        return ""
    if kind == "pair":
        on, off = decls[0].split("/")
        value = (on if value else off).lstrip("-")
    elif isinstance(value, float):
        value = f"{value:g}"
    return f" \\[default: {value}]"   # the backslash keeps Rich from reading it as markup


def config_options(cls: type[StageConfig], *, default_panel: Optional[str] = None,
                   extra_help: Optional[Mapping[str, str]] = None) -> Callable[[Callable], Callable]:
    """Decorator: the command gets one flag per CLI field of `cls` (see the module's doc)."""
    flags = field_flags(cls, default_panel=default_panel, extra_help=extra_help)

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
        if GIVEN not in sig.parameters:
            raise TypeError(f"{fn.__name__} needs a `{GIVEN}` parameter for the options of {cls.__name__}")
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
               if p.name != GIVEN]
        clash = {p.name for p in own} & {x.name for x in flags}
        if clash:
            raise TypeError(f"{fn.__name__}'s parameters {', '.join(sorted(clash))} are also fields of {cls.__name__}")
        lead = 0
        while lead < len(own) and (isinstance(own[lead].default, ArgumentInfo) or own[lead].name == "workspace"):
            lead += 1
        params = own[:lead] + [x.parameter() for x in flags] + own[lead:]
        by_name = {x.name: x for x in flags}

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            given = {name: by_name[name].to_config(kwargs.pop(name)) for name in list(kwargs) if name in by_name}
            return fn(**kwargs, **{GIVEN: given})

        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.field_flags = flags  # type: ignore[attr-defined]  # for tests and docs
        return command

    return decorate
