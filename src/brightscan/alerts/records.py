"""The in-memory alert record and the rejection record, shared by every reader."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from brightscan.alerts.rubin import RubinAlert

#: Cutout field names in ZTF packets, in the model's channel order (science, reference, difference).
CUTOUT_FIELDS: tuple[str, str, str] = ("cutoutScience", "cutoutTemplate", "cutoutDifference")

#: ``candid`` is a signed 64-bit integer in ZTF's schema and in every table we write.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: The longest ``objectId`` accepted (the autoscan database's column is this wide).
OBJECT_ID_MAX_LENGTH = 32
#: ZTF's object names: ``ZTF`` + two digits (the year) + seven lowercase letters.
ZTF_OBJECT_ID = re.compile(r"ZTF[0-9]{2}[a-z]{7}")
#: Any other survey's or export's names: letters, digits and ``_ - . : +`` only (no ``/``, no
#: spaces or control characters: names end up in URLs, file names and log lines).
OBJECT_ID = re.compile(r"[A-Za-z0-9_.:+-]+")
#: Julian dates from 1858 (MJD 0) to 2406: anything else is not an observation time.
JD_RANGE = (2_400_000.5, 2_600_000.0)
#: Candidate magnitudes that must be finite when present (null is allowed: no measurement).
MAGNITUDE_FIELDS = ("magpsf", "sigmapsf", "diffmaglim")


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

    The identity, the structure and the values every later stage trusts are checked here:
    ``candid`` within int64, ``objectId`` at most 32 characters of a safe pattern (ZTF's exactly),
    ``jd`` within :data:`JD_RANGE`, ``ra`` in [0, 360] and ``dec`` in [-90, 90] when they are
    numbers, candidate magnitudes and ``prv_candidates`` dates finite; each rejection names the
    field. Missing features and bad cutouts are the preprocessing stage's business, so they are
    reported with that stage. Exports that drop
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
    raw_id = record.get("objectId")
    id_problem = _object_id_problem(raw_id)
    object_id = raw_id if id_problem is None else None

    def reject(reason: str) -> Rejection:
        return Rejection(candid, object_id, source, "read", reason)

    if not isinstance(candidate, Mapping):
        return reject("packet has no candidate record")
    if id_problem is not None:
        return reject(id_problem)
    if candid is None:
        return reject(candid_problem)
    jd = candidate.get("jd")
    if not _is_number(jd) or jd != jd:
        return reject("candidate has no numeric jd")
    prv = record.get("prv_candidates") or ()
    if not isinstance(prv, (list, tuple)) or not all(isinstance(p, Mapping) for p in prv):
        return reject("prv_candidates is not a list of records")
    problem = _value_problem(candidate, prv)
    if problem is not None:
        return reject(problem)
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


def _object_id_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an ``objectId``, or None when it can."""
    if not isinstance(value, str) or not value:
        return "packet has no objectId"
    shown = repr(value[:40]) + ("..." if len(value) > 40 else "")
    if len(value) > OBJECT_ID_MAX_LENGTH:
        return f"objectId {shown} is {len(value)} characters long, more than {OBJECT_ID_MAX_LENGTH}"
    if value.startswith("ZTF") and not ZTF_OBJECT_ID.fullmatch(value):
        return f"objectId {shown} is not a ZTF name (ZTF, 2 digits, 7 lowercase letters)"
    if not OBJECT_ID.fullmatch(value):
        return f"objectId {shown} holds characters other than letters, digits and _-.:+"
    return None


def _value_problem(candidate: Mapping[str, Any], prv: Any) -> str | None:
    """The first candidate or history value outside its physical range, named; None if all fit."""
    jd = candidate["jd"]
    if not JD_RANGE[0] <= jd <= JD_RANGE[1]:
        return f"candidate jd {jd!r} is outside {JD_RANGE[0]}-{JD_RANGE[1]}"
    for name, low, high in (("ra", 0.0, 360.0), ("dec", -90.0, 90.0)):
        value = candidate.get(name)
        if _is_number(value) and not low <= value <= high:  # a non-number is the features stage's
            return f"candidate {name} {value!r} is outside [{low:g}, {high:g}]"
    for name in MAGNITUDE_FIELDS:
        value = candidate.get(name)
        if _is_number(value) and not math.isfinite(value):
            return f"candidate {name} {value!r} is not finite"
    isfinite = math.isfinite
    for number, entry in enumerate(prv):  # hot: ~30 entries an alert; only floats can be non-finite
        jd, magpsf = entry.get("jd"), entry.get("magpsf")
        if isinstance(jd, float) and not isfinite(jd):
            return f"prv_candidates[{number}] jd {jd!r} is not finite"
        if isinstance(magpsf, float) and not isfinite(magpsf):
            return f"prv_candidates[{number}] magpsf {magpsf!r} is not finite"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _candid(record: Mapping[str, Any], candidate: Any) -> tuple[int | None, str]:
    """The packet's candid (top level, else ``candidate.candid``), or None and why."""
    values = [("candid", record.get("candid"))]
    if isinstance(candidate, Mapping):
        values.append(("candidate.candid", candidate.get("candid")))
    for name, value in values:
        number = _as_int(value)
        if number is not None and not INT64_MIN <= number <= INT64_MAX:
            return None, f"{name} {_short(value)} is outside the int64 range"
        if number is not None:
            return number, ""
    for name, value in values:
        if value is not None:
            return None, f"{name} {_short(value)} is not an integer"
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
        # a digit string longer than int64's 19 digits is out of range, whatever its value: never
        # converted (Python refuses over 4300 digits, and a huge one costs quadratic time)
        return int(value) if len(value.lstrip("0")) <= 19 else INT64_MAX + 1
    return None


def _short(value: Any) -> str:
    # A value quoted in a reason, cut short: an attacker's 1 MB digit string never reaches a log.
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else f"<{value.bit_length()}-bit int>"
    return text if len(text) <= 40 else f"{text[:40]}... ({len(text)} characters)"
