"""JSON-safe values: the one conversion used by every card, report and stored policy we write."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps`` accepts and that reads back the same everywhere.

    Tuples and arrays become lists, numpy scalars Python numbers, mapping keys strings, and
    NaN/inf become ``None`` (JSON has no non-finite numbers).
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
