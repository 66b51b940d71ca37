"""The HTML pages brightscan writes or serves (evaluation report, night page, live status page):
one Jinja2 environment, one stylesheet, and the formatting every page shares.

Pages work without JavaScript; the only script is a small inline one that sorts tables when a
header is clicked. Every page has a viewport tag and keeps wide tables inside their own
scrolling box, so nothing scrolls the whole page sideways on a phone.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brightscan.times import jd_to_datetime

if TYPE_CHECKING:
    import numpy as np

__all__ = ["COLUMN_NAMES", "data_uri", "human", "jd_to_utc", "metric", "render", "triplet_png"]

#: Human names of the metric keys that reach a page.
COLUMN_NAMES = {
    "auc": "AUC", "val_auc": "AUC on val", "accuracy": "accuracy", "precision": "precision", "recall": "recall",
    "n_alerts": "alerts", "ece": "ECE", "ece_before": "ECE before", "ece_after": "ECE after",
    "temperature": "temperature", "completeness": "completeness", "purity": "purity",
    "n_sources": "sources", "n_bright": "bright sources", "n_passed": "sources passed",
    "median_delay_days": "median delay vs scanners (days)", "n_delays": "sources with a delay",
    "tp": "true positives", "fp": "false positives", "tn": "true negatives", "fn": "false negatives",
}


def human(key: str) -> str:
    """The human name of a metric key (``median_delay_days`` -> ``median delay vs scanners (days)``)."""
    return COLUMN_NAMES.get(key, key.replace("_", " "))


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: ``–`` for missing/NaN, integers as is, floats to ``digits`` places."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def metric(values: Mapping[str, Any] | None, key: str, digits: int = 3) -> str:
    """``values[key]`` formatted, followed by its 95% interval when ``values`` has ``<key>_ci``."""
    if not values:
        return "–"
    text = fmt(values.get(key), digits)
    ci = values.get(f"{key}_ci")
    if ci is not None and len(ci) == 2 and text != "–":
        text += f" [{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"
    return text


def jd_to_utc(jd: float | None, seconds: bool = False) -> str:
    """Julian date as ``YYYY-MM-DD HH:MM[:SS]`` UTC."""
    if jd is None or not math.isfinite(jd):
        return "–"
    try:
        return jd_to_datetime(jd).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    except (OverflowError, ValueError):  # a stored value no calendar holds: show it, never fail
        return f"JD {jd:g}"


def unix_to_utc(ts: float | None) -> str:
    """Unix time as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    if ts is None or not math.isfinite(ts):
        return "–"
    try:
        return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):  # out of the platform's range
        return f"unix {ts:g}"


def data_uri(source: str | Path | bytes, mime: str = "image/png") -> str:
    """A file or bytes as a ``data:`` URI (pages stay one self-contained file)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("brightscan.pages", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(fmt=fmt, human=human, jd=jd_to_utc, unix=unix_to_utc)
    env.globals.update(metric=metric, human=human, fmt=fmt)
    return env


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return _environment().get_template(template).render(**context)


def triplet_png(triplet: np.ndarray, scale: int = 2) -> bytes:
    """PNG bytes of a (63, 63, 3) science/reference/difference triplet side by side.

    Each stamp is stretched between its 0.5 and 99.5 percentiles, in grey, 2 px apart.
    """
    import numpy as np
    from matplotlib.image import imsave

    stamps = []
    for i in range(3):
        img = np.asarray(triplet[:, :, i], dtype=np.float64)
        lo, hi = np.nanpercentile(img, [0.5, 99.5]) if np.isfinite(img).any() else (0.0, 1.0)
        scaled = np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        stamps.append(np.kron(np.nan_to_num(scaled)[::-1], np.ones((scale, scale))))
        if i < 2:
            stamps.append(np.ones((stamps[-1].shape[0], 2 * scale)))
    buffer = io.BytesIO()
    imsave(buffer, np.hstack(stamps), cmap="gray", vmin=0, vmax=1, format="png")
    return buffer.getvalue()
