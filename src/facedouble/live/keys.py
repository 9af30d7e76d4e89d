"""Keys that change a running live swap from the terminal (`facedouble live` with stdin a terminal).

`key_action(key, settings, morphable)` is pure: one key and the current settings in, the change out (the
settings to pass to `LiveSession.update`, kept inside each option's range, and a line saying what it did).
`KEYS` is the table printed once at start (`key_help()`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..choices import ColorTransfer, values
from ..config import LiveConfig

# key -> (setting, step); a step on a number moves it within its lo..hi
STEPS: dict[str, tuple[str, int]] = {
    "+": ("opacity", 10), "=": ("opacity", 10), "-": ("opacity", -10),
    "]": ("erode", 10), "[": ("erode", -10),
    "}": ("blur", 10), "{": ("blur", -10),
    ".": ("face_scale", 5), ",": ("face_scale", -5),
    "m": ("morph", 10), "n": ("morph", -10),
    ")": ("delay_ms", 20), "(": ("delay_ms", -20),
}
KEYS: tuple[tuple[str, str], ...] = (
    ("q", "stop (the output is closed properly)"),
    ("+ / -", "opacity"),
    ("] / [", "erode"),
    ("} / {", "blur"),
    (". / ,", "face scale"),
    ("c", "next colour transfer"),
    ("k", "mask: learned / dst"),
    ("m / n", "morph factor (morphable models)"),
    (") / (", "delay"),
    ("h", "this list"),
)


@dataclass(frozen=True)
class KeyAction:
    """What one key does: settings to change (for `LiveSession.update`), stop, or show the keys; `text` says
    it in a few words ("" for a key that does nothing)."""

    changes: dict[str, Any] = field(default_factory=dict)
    stop: bool = False
    help: bool = False
    text: str = ""


def _bounds(name: str) -> tuple[int, int]:
    f = {f.name: f for f in dataclasses.fields(LiveConfig)}[name]
    return int(f.metadata["lo"]), int(f.metadata["hi"])


def _unit(name: str) -> str:
    f = {f.name: f for f in dataclasses.fields(LiveConfig)}[name]
    return f.metadata.get("unit", "")


def key_action(key: str, settings: LiveConfig, morphable: bool = False) -> KeyAction:
    """The change one key makes to `settings` (see the module doc). Unknown keys do nothing."""
    if key in ("q", "Q"):
        return KeyAction(stop=True, text="stopping")
    if key in ("h", "?"):
        return KeyAction(help=True)
    if key == "c":
        modes = values(ColorTransfer)
        now = settings.color_transfer
        new = modes[(modes.index(now) + 1) % len(modes)] if now in modes else modes[0]
        return KeyAction({"color_transfer": new}, text=f"colour transfer {new}")
    if key == "k":
        new = "dst" if settings.mask == "learned" else "learned"
        return KeyAction({"mask": new}, text=f"mask {new}")
    if key in STEPS:
        name, step = STEPS[key]
        label = name.replace("_ms", "").replace("_", " ")
        if name == "morph" and not morphable:
            return KeyAction(text="this model has no morph factor")
        lo, hi = _bounds(name)
        old = int(getattr(settings, name))
        new = min(hi, max(lo, old + step))
        unit = _unit(name)
        text = f"{label} {new}{' ' + unit if unit and unit != '%' else unit}"
        return KeyAction({name: new} if new != old else {}, text=text)
    return KeyAction()


def key_help() -> str:
    """The keys, one line."""
    return "keys: " + "; ".join(f"{k} {what}" for k, what in KEYS)


__all__ = ["KEYS", "KeyAction", "key_action", "key_help"]
