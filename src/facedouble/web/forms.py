"""The UI's option forms: each stage's config fields as form descriptions, a config built from a form (path options
confined to the workspace), and the config a stage saved (the base a form changes)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any


from .. import config as K
from ..errors import OptionError
from ..stages import STAGES
from ..stages import stage as stage_by_name
from ..workspace import Workspace
from . import security as S
from .http import SIDES

# The option forms and jobs of the UI: the stage table's UI stages (stages.py); a stage without options gets
# an empty form.
STAGE_CONFIGS: dict[str, type[K.StageConfig]] = {s.name: s.config or K.StageConfig for s in STAGES if s.ui}
SIDED = {s.name for s in STAGES if s.ui and s.sided}
# The options that name a file or folder. A path from the UI must lie inside the workspace (a relative one is
# taken from the workspace root), so a request can neither read nor write elsewhere; only a value the
# workspace's saved config already holds (set with the CLI) may point outside it.
PATH_OPTIONS: dict[type[K.StageConfig], frozenset[str]] = {
    K.ExtractConfig: frozenset({"reference", "rects"}),
    K.SortConfig: frozenset({"reference"}),
    K.TrainConfig: frozenset({"faceset", "from_model"}),
    K.MergeConfig: frozenset({"model", "model_file", "sign_cert", "sign_key"}),
    K.VideoBuildConfig: frozenset({"input_dir", "sign_cert", "sign_key"}),
    K.ReportConfig: frozenset({"result", "dst", "out", "src"}),
}


def field_kind(tp: Any) -> tuple[str, list[str] | None, bool]:
    """(kind, choices, optional) of a config field type."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else tp
        origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "choice", [str(a) for a in typing.get_args(tp)], optional
    if tp is bool:
        return "bool", None, optional
    if tp is int:
        return "int", None, optional
    if tp is float:
        return "float", None, optional
    if tp is str:
        return "str", None, optional
    return "other", None, optional

def option_schema(cls: type[K.StageConfig]) -> list[dict[str, Any]]:
    """The fields of a stage config as form descriptions: name, label, kind, choices, default, help, lo, hi,
    unit and group (the form's section: the field's `group` metadata, else "options", or "advanced" for the
    options the CLI does not ask)."""
    hints = typing.get_type_hints(cls)
    default = cls() if cls is not K.StageConfig else None
    out = []
    for f in dataclasses.fields(cls):
        kind, options, optional = field_kind(hints[f.name])
        if kind == "other":
            continue
        out.append({"name": f.name, "flag": cls.flag(f.name), "kind": kind, "choices": options,
                    "optional": optional, "default": K._jsonable(getattr(default, f.name)),
                    "help": f.metadata.get("help", ""), "lo": f.metadata.get("lo"), "hi": f.metadata.get("hi"),
                    "ask": f.metadata.get("ask", True), "fixed": f.metadata.get("fixed", False),
                    "unit": f.metadata.get("unit", ""), "label": f.metadata.get("label") or f.name.replace("_", " "),
                    "group": f.metadata.get("group") or ("options" if f.metadata.get("ask", True) else "advanced")})
    return out

def build_config(cls: type[K.StageConfig], given: dict[str, Any] | None, ws: Workspace,
                 base: K.StageConfig | None = None, saved: K.StageConfig | None = None) -> K.StageConfig:
    """A config from form values (JSON types or strings; "" = empty/None) over `base` (default: the
    defaults); validated by the dataclass. Paths (PATH_OPTIONS) are confined to the workspace (403), except
    a value equal to the one in `saved` (default: `base`), the workspace's saved config."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    paths = PATH_OPTIONS.get(cls, frozenset())
    saved = saved if saved is not None else base
    values: dict[str, Any] = {}
    for name, raw in (given or {}).items():
        if name not in fields:
            raise OptionError(f"Unknown option {name!r} for {cls.__name__}.")
        kind, _choices, optional = field_kind(hints[name])
        flag = "--" + name.replace("_", "-")
        if kind == "other" and name not in paths:
            raise OptionError(f"{flag} cannot be set from the UI; use the CLI for it.")
        if name in paths and raw not in (None, ""):
            values[name] = path_option(ws, name, raw, kind, saved)
            continue
        if raw is None or raw == "":
            if not optional and kind != "str":
                continue                      # empty: keep the default
            values[name] = None if optional else ""
            continue
        try:
            if kind == "bool":
                value: Any = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on", "y")
            elif kind == "int":
                value = int(raw) if not isinstance(raw, bool) else int(raw)
                if isinstance(raw, float) and raw != int(raw):
                    raise ValueError
            elif kind == "float":
                value = float(raw)
            else:
                value = str(raw)
        except (TypeError, ValueError):
            raise OptionError(f"{flag} must be a {kind}, not {raw!r}.") from None
        values[name] = value
    base = base if isinstance(base, cls) else cls()
    return cls.from_dict({**{f: getattr(base, f) for f in fields}, **values})

def path_option(ws: Workspace, name: str, raw: Any, kind: str, saved: K.StageConfig | None) -> Any:
    """A path option (or a list of them for a tuple field) confined to the workspace, as absolute paths."""
    flag = "--" + name.replace("_", "-")
    kept = getattr(saved, name, None) if saved is not None else None
    if kind == "other":
        items = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        if not all(isinstance(i, str) and i for i in items):
            raise OptionError(f"{flag} must be a list of paths inside the workspace.")
        if kept is not None and tuple(items) == tuple(kept):
            return tuple(items)
        return tuple(str(S.confine(ws.root, i)) for i in items)
    if not isinstance(raw, str):
        raise OptionError(f"{flag} must be a path inside the workspace, not {raw!r}.")
    if kept is not None and raw == kept:
        return raw
    return str(S.confine(ws.root, raw))

def saved_config(ws: Workspace, stage: str, side: Any) -> K.StageConfig | None:
    """The config a stage saved in the workspace (extract.json, merge_config.json), if any: the base that
    the UI's options change, as a re-run of the CLI with --config would."""
    st = stage_by_name(stage)
    cls = st.config
    if not st.resumes_saved or cls is None or (cls.PLACE == "side" and side not in SIDES):
        return None
    return cls.saved_in(ws, side if cls.PLACE == "side" else None)
