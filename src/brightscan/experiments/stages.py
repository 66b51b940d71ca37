"""Resumable stages: a done-marker per stage, with its settings, wall time and peak memory.

A stage is a function that writes into a folder. :class:`StageRunner` runs it at most once: when
the stage's marker (``<root>/stages/<name>.json``) exists with the same settings the stored result
is returned; when the marker holds other settings a :class:`~brightscan.errors.ConfigError` says
so, since re-using outputs made with other settings would mix two experiments. A stage cut short
leaves no marker and runs again (its function must clear or resume what it left behind).

Peak memory is the largest resident set of this process plus its child processes (the simulator's
workers), sampled from ``/proc`` every 0.2 s while the stage runs: Linux only, and ``None``
elsewhere.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brightscan.errors import ConfigError
from brightscan.serial import to_jsonable

log = logging.getLogger(__name__)

__all__ = ["PeakMemory", "StageRunner"]


def _rss_bytes(pid: int) -> int:
    """Resident set of ``pid`` in bytes (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def tree_rss_bytes(pid: int | None = None) -> int:
    """Resident set of a process and all its descendants, in bytes."""
    todo, total, seen = [pid or os.getpid()], 0, set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_bytes(p)
        todo.extend(_children(p))
    return total


class PeakMemory:
    """Context manager sampling the peak resident set of this process tree.

    Attributes
    ----------
    peak_mib : float or None
        Largest sample in MiB after exit; None where ``/proc`` is unavailable.
    """

    def __init__(self, interval_s: float = 0.2):
        self.interval_s = interval_s
        self.peak_mib: float | None = None
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while True:
            self._peak = max(self._peak, tree_rss_bytes())
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> PeakMemory:
        if Path("/proc/self/statm").exists():
            self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mib = round(max(self._peak, tree_rss_bytes()) / 2**20, 1)


class StageRunner:
    """Run named stages once each under ``root``, recording result, time and peak memory.

    Parameters
    ----------
    root : path
        Folder of one experiment row; markers go to ``root/stages/``.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.marker_dir = self.root / "stages"

    def marker(self, name: str) -> Path:
        """Path of a stage's done-marker."""
        return self.marker_dir / f"{name}.json"

    def done(self, name: str) -> dict[str, Any] | None:
        """The stored marker of a finished stage, or None."""
        path = self.marker(name)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def run(self, name: str, settings: dict[str, Any], fn: Callable[[], Any]) -> dict[str, Any]:
        """Run ``fn`` unless ``name`` is done with the same ``settings``; return its marker.

        The marker holds ``settings``, ``result`` (``fn``'s return value, JSON-ready),
        ``seconds`` (wall time) and ``peak_rss_mib``.
        """
        settings = json.loads(json.dumps(to_jsonable(settings)))
        stored = self.done(name)
        if stored is not None:
            if stored.get("settings") != settings:
                raise ConfigError(
                    f"{self.marker(name)} was made with other settings ({stored.get('settings')} "
                    f"instead of {settings}); use another --out or delete that folder")
            log.info("%s: stage %s already done, re-using it", self.root, name)
            return stored
        start = time.perf_counter()
        with PeakMemory() as memory:
            result = fn()
        marker = {"stage": name, "settings": settings, "result": to_jsonable(result),
                  "seconds": round(time.perf_counter() - start, 1), "peak_rss_mib": memory.peak_mib,
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.marker(name).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.marker(name))  # atomic: a marker is either whole or absent
        return marker
