"""What the UI's JSON answers may hold: strict JSON has no NaN or infinity."""

from __future__ import annotations

from typing import Any

import numpy as np


def finite(value: Any) -> Any:
    """`value` with every non-finite float (in nested dicts and lists too) as None, so strict JSON can carry it."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value
