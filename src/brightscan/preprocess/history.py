"""Earlier detections of each object: the history the history features are computed from.

Three callers fill it in three ways, and the features treat every one the same (causally: nothing
later than the alert's own ``jd`` is used, see :func:`brightscan.preprocess.features.causal_detections`):

- ``History.collect(inputs)``: a first pass over files, every alert of each object (the causal
  mode of ``preprocess``, ``score`` and ``dataset build``; on a cluster, one ``collect`` per
  partition, then :meth:`History.merged`);
- ``History(stored_rows, grow=True)``: autoscan's rows already in its database, to which each
  newly accepted alert is added as it is prepared (alerts arrive in ``jd`` order);
- ``History()``: nothing but the packet's own ``prv_candidates``, as production does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from brightscan.alerts.records import Alert, Rejection

__all__ = ["History", "detection_record"]


def detection_record(alert: Alert) -> dict[str, Any]:
    """What the history keeps of one alert: ``candid``, ``jd``, ``magpsf``, ``fid``."""
    cand = alert.candidate
    return {"candid": alert.candid, "jd": cand.get("jd"), "magpsf": cand.get("magpsf"), "fid": cand.get("fid")}


class History:
    """Detection records of earlier alerts, by ``objectId``.

    Parameters
    ----------
    records : mapping, optional
        ``objectId -> detection records`` (mappings with at least ``candid``, ``jd``, ``magpsf``,
        ``fid``). Copied: the caller's lists are never changed.
    grow : bool
        Add each alert that :meth:`add` is called with (the pipeline calls it for every alert it
        accepts), so later alerts of the same chunk see it.
    """

    def __init__(self, records: Mapping[str, Iterable[Mapping[str, Any]]] | None = None, *,
                 grow: bool = False) -> None:
        self._by_object: dict[str, list[Mapping[str, Any]]] = {
            object_id: list(rows) for object_id, rows in (records or {}).items()}
        self.grow = grow

    @classmethod
    def collect(cls, inputs: Any, limits: Any = None) -> History:
        """First pass over alert files: every readable alert's detection record, by object.

        ``limits`` (a :class:`~brightscan.alerts.limits.ReadLimits`) bounds the reading, as in the
        second pass.
        """
        from brightscan.alerts import read_alerts
        from brightscan.alerts.limits import DEFAULT_LIMITS

        history = cls()
        for item in read_alerts(inputs, limits=limits or DEFAULT_LIMITS):
            if not isinstance(item, Rejection):  # a ZTF Alert or a RubinAlert
                history._by_object.setdefault(item.object_id, []).append(detection_record(item))
        return history

    @classmethod
    def merged(cls, parts: Iterable[History]) -> History:
        """One history of several (e.g. each partition's :meth:`collect`), records in the order
        given: the same as :meth:`collect` over the parts' inputs in that order."""
        history = cls()
        for part in parts:
            for object_id, rows in part._by_object.items():
                history._by_object.setdefault(object_id, []).extend(rows)
        return history

    def earlier(self, alert: Alert) -> Sequence[Mapping[str, Any]]:
        """The records of ``alert``'s object (the features drop any later than the alert)."""
        return self._by_object.get(alert.object_id, ())

    def add(self, alert: Alert) -> None:
        """Record an accepted alert when this history grows; otherwise do nothing."""
        if self.grow:
            self._by_object.setdefault(alert.object_id, []).append(detection_record(alert))

    def objects(self) -> list[str]:
        """The ``objectId`` of every object with at least one record, in first-seen order."""
        return [o for o, rows in self._by_object.items() if rows]

    def records(self, object_id: str) -> Sequence[Mapping[str, Any]]:
        """The records of one object (empty when unknown)."""
        return self._by_object.get(object_id, ())

    def __len__(self) -> int:
        return len(self.objects())
