"""The in-memory alert record and the rejection record, shared by every reader."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from brightscan.alerts.rubin import RubinAlert

#: Cutout field names in ZTF packets, in the model's channel order (science, reference, difference).
CUTOUT_FIELDS: tuple[str, str, str] = ("cutoutScience", "cutoutTemplate", "cutoutDifference")


@dataclass(frozen=True, slots=True)
class Alert:
    """One ZTF alert packet, as read from any container.

    Field names follow the ZTF schema at this boundary (``candid``, ``objectId`` in files);
    ``cutouts`` maps each of :data:`CUTOUT_FIELDS` to the raw (normally gzipped FITS) bytes.
    """

    survey: ClassVar[str] = "ztf"

    object_id: str
    candid: int
    candidate: Mapping[str, Any]
    prv_candidates: tuple[Mapping[str, Any], ...]
    cutouts: Mapping[str, bytes | None]
    source: str
    schemavsn: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def jd(self) -> float:
        return float(self.candidate["jd"])


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one alert (or one unreadable file) was not used."""

    candid: int | None
    object_id: str | None
    source: str
    stage: str
    reason: str

    def as_row(self) -> dict[str, Any]:
        return {
            "candid": self.candid,
            "objectId": self.object_id,
            "source": self.source,
            "stage": self.stage,
            "reason": self.reason,
        }


def alert_from_record(record: Mapping[str, Any], source: str) -> Alert | RubinAlert | Rejection:
    """Validate a decoded packet (Avro record or Parquet row) and build an :class:`Alert`.

    Only the identity and the structure are checked here; missing features and bad cutouts are
    the preprocessing stage's business, so they are reported with that stage. Exports that drop
    the top-level ``candid`` (Spark's, some brokers') are read through ``candidate.candid``; a
    missing ``prv_candidates`` field means no earlier detections, as a null one does in ZTF's
    packets. A Rubin packet (a ``diaSource`` record, no ``candidate``) becomes a
    :class:`~brightscan.alerts.rubin.RubinAlert` instead.
    """
    from brightscan.alerts.rubin import is_rubin_record, rubin_alert_from_record  # rubin imports us

    if isinstance(record, Mapping) and is_rubin_record(record):
        return rubin_alert_from_record(record, source)
    candidate = record.get("candidate")
    candid, candid_problem = _candid(record, candidate)
    object_id = record.get("objectId")
    object_id = object_id if isinstance(object_id, str) and object_id else None

    def reject(reason: str) -> Rejection:
        return Rejection(candid, object_id, source, "read", reason)

    if not isinstance(candidate, Mapping):
        return reject("packet has no candidate record")
    if object_id is None:
        return reject("packet has no objectId")
    if candid is None:
        return reject(candid_problem)
    jd = candidate.get("jd")
    if not isinstance(jd, (int, float)) or isinstance(jd, bool) or jd != jd:
        return reject("candidate has no numeric jd")
    prv = record.get("prv_candidates") or ()
    if not isinstance(prv, (list, tuple)) or not all(isinstance(p, Mapping) for p in prv):
        return reject("prv_candidates is not a list of records")
    cutouts = {name: _stamp_bytes(record.get(name)) for name in CUTOUT_FIELDS}
    schemavsn = record.get("schemavsn")
    return Alert(
        object_id=object_id,
        candid=candid,
        candidate=candidate,
        prv_candidates=tuple(prv),
        cutouts=cutouts,
        source=source,
        schemavsn=str(schemavsn) if schemavsn is not None else None,
    )


def _candid(record: Mapping[str, Any], candidate: Any) -> tuple[int | None, str]:
    """The packet's candid (top level, else ``candidate.candid``), or None and why."""
    values = [("candid", record.get("candid"))]
    if isinstance(candidate, Mapping):
        values.append(("candidate.candid", candidate.get("candid")))
    for _, value in values:
        number = _as_int(value)
        if number is not None:
            return number, ""
    for name, value in values:
        if value is not None:
            return None, f"{name} {value!r} is not an integer"
    return None, "packet has no integer candid (neither candid nor candidate.candid)"


def _stamp_bytes(cutout: Any) -> bytes | None:
    if isinstance(cutout, Mapping):
        data = cutout.get("stampData")
    else:
        data = cutout
    return bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else None


def _as_int(value: Any) -> int | None:
    # An integer, or its decimal digits (exports through JSON or CSV carry candid as text); never
    # a float: a double cannot hold a 19-digit candid exactly.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None
