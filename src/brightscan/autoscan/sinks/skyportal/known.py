"""What a save's check just read of an object, so the object's next actions need not ask again.

A save starts with ``GET /api/sources/{obj_id}``, and SkyPortal's answer always carries the
object's non-deleted follow-up requests and its annotations (``get_source`` in SkyPortal's
``handlers/api/source.py``); a 404 says the object does not exist, so it has neither. The
follow-up and annotation actions of that object, delivered moments later by this process, would
otherwise each start with a GET of their own. :class:`KnownState` keeps that answer for a short
while and hands each part out once; the sink uses it only to conclude that *nothing* of ours can
exist yet (no request of our allocation, no annotation of our origin), never to skip a write.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

from brightscan.autoscan.sinks.skyportal.client import SourceInfo

__all__ = ["KnownState"]

Part = Literal["followup", "annotation"]


class KnownState:
    """Per-object follow-up allocations and annotation origins, as a save's check read them.

    Parameters
    ----------
    max_age_s : float
        How long an answer is used (0: never; every action asks SkyPortal itself).
    max_objects : int
        Objects remembered at most; the oldest are forgotten first (memory stays bounded).
    clock : callable
        Monotonic seconds.
    """

    def __init__(self, max_age_s: float = 60.0, max_objects: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s, self.max_objects, self._clock = float(max_age_s), int(max_objects), clock
        self._known: OrderedDict[str, tuple[float, dict[str, frozenset | None]]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, obj_id: str, source: SourceInfo | None) -> None:
        """Keep what ``GET /api/sources/{obj_id}`` answered (``None``: no such object)."""
        if self.max_age_s <= 0:
            return
        parts = ({"followup": frozenset(), "annotation": frozenset()} if source is None else
                 {"followup": source.followup_allocation_ids, "annotation": source.annotation_origins})
        with self._lock:
            self._known.pop(obj_id, None)
            self._known[obj_id] = (self._clock(), parts)
            while len(self._known) > self.max_objects:
                self._known.popitem(last=False)

    def take(self, obj_id: str, part: Part) -> frozenset | None:
        """The remembered follow-up allocation ids or annotation origins of ``obj_id``, once;
        ``None`` when unknown or older than ``max_age_s``."""
        with self._lock:
            entry = self._known.get(obj_id)
            if entry is None:
                return None
            stamp, parts = entry
            value = parts.pop(part, None)
            if not parts:
                del self._known[obj_id]
        return value if self._clock() - stamp <= self.max_age_s else None
