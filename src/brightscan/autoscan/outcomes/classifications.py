"""Readers of later classifications: the BTS sample explorer CSV, the TNS public objects CSV, a plain CSV.

Each reader turns one file into :class:`Classification` rows plus a list of :class:`RowError`
(line number and reason) for the rows it could not use: one bad row never stops a file.
The columns were checked against public copies (see ``docs/autoscan.md``, "Outcomes"):

- BTS explorer (``sites.astro.caltech.edu/ztf/bts/explorer.php?format=csv``): ``ZTFID, IAUID,
  RA, Dec, peakt, peakfilt, peakmag, peakabs, duration, rise, fade, type, redshift, b, A_V``;
  ``RA``/``Dec`` sexagesimal (decimal degrees accepted too), ``peakt`` in JD - 2458000, ``-`` for
  a missing value, ``type`` ``-`` while unclassified.
- TNS ``tns_public_objects.csv``: a first line with the file's date, then ``objid, name_prefix,
  name, ra, declination, redshift, typeid, type, ..., discoverydate, discoverymag, ...,
  internal_names, creationdate, lastmodified``. The file has no classification date:
  ``lastmodified`` is kept as an upper bound of it.
- plain: ``objectId, bright, classified_at, type`` (``bright`` 1/0/true/false, empty = unknown).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from brightscan.errors import InputError
from brightscan.times import unix_to_jd

__all__ = [
    "BRIGHT_PEAK_MAG", "FORMATS", "Classification", "ClassificationTable", "RowError",
    "bright_from", "is_sn_like", "read_classifications", "read_save_times",
]

#: BTS's magnitude limit: a bright transient peaks at or brighter than this in g or r.
BRIGHT_PEAK_MAG = 18.5
#: Formats :func:`read_classifications` knows; "auto" picks one from the header.
FORMATS = ("bts", "tns", "plain", "auto")
#: BTS explorer ``peakt`` is counted from this Julian date.
BTS_PEAKT_ZERO_JD = 2458000.0
#: A file larger than this is refused before it is read (the whole TNS file is ~60 MB today).
MAX_FILE_BYTES = 512 * 1024 * 1024

_ZTF_ID = re.compile(r"ZTF\d{2}[a-z]{7}")
_BTS_COLUMNS = ("ZTFID", "IAUID", "RA", "Dec", "peakt", "peakfilt", "peakmag", "peakabs", "duration",
                "rise", "fade", "type", "redshift", "b", "A_V")
_TNS_REQUIRED = ("name_prefix", "name", "ra", "declination", "type", "internal_names")
_PLAIN_REQUIRED = ("objectId", "bright")
# SN classes (with or without TNS's "SN " prefix): SN, I, Ia*, Ib*, Ic*, Ib/c, II*, SLSN-*, Ca-rich
_SN_LIKE = re.compile(r"^(SN\s*$|(SN\s*)?(I[abc]?\b|II|SLSN|Ca-rich|Iax|Icn|Ibn))", re.IGNORECASE)
_MISSING = {"", "-", "nan", "none", "null"}


@dataclass(frozen=True)
class Classification:
    """One object's later classification, whatever file it came from."""

    line: int  # line number in the file (1-based), for messages
    object_id: str | None  # ZTF objectId when the file gives one
    name: str | None  # IAU / TNS name ("SN 2023ixf")
    ra: float | None  # degrees
    dec: float | None  # degrees
    type: str | None  # classification as written; None while unclassified
    bright: bool | None  # the rule in :func:`bright_from`; None when not known (unclassified)
    peak_mag: float | None  # BTS peakmag; TNS discoverymag (a lower bound of the brightness)
    classified_jd: float | None  # when classified, where the file says (plain; TNS's lastmodified)


@dataclass(frozen=True)
class RowError:
    """A row that could not be used."""

    line: int  # line number in the file (1-based)
    reason: str  # why

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ClassificationTable:
    """What a file held: its format, the usable rows and the rejected ones."""

    path: str  # the file read
    format: str  # bts | tns | plain
    rows: list[Classification] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def is_sn_like(type_: str | None) -> bool:
    """True for a supernova class (BTS's positive class is bright SNe: Ia, Ib/c, II, SLSN, ...)."""
    return bool(type_) and bool(_SN_LIKE.match(type_.strip()))


def bright_from(type_: str | None, peak_mag: float | None) -> bool | None:
    """The bright rule: classified SN-like and peak magnitude <= :data:`BRIGHT_PEAK_MAG`.

    ``None`` (unknown) when the object is not classified yet; an SN without a peak magnitude is
    not called bright.
    """
    if not type_:
        return None
    return is_sn_like(type_) and peak_mag is not None and peak_mag <= BRIGHT_PEAK_MAG


def read_classifications(path: str | Path, format: str = "auto") -> ClassificationTable:
    """Read a classification file.

    Parameters
    ----------
    path : path
        The CSV (BTS explorer, TNS public objects or plain).
    format : {"auto", "bts", "tns", "plain"}
        ``auto`` recognises the format by its header.

    Returns
    -------
    ClassificationTable
        Rows and per-line errors.

    Raises
    ------
    InputError
        The file is missing, too large, not text, or its header is none of the formats.
    """
    if format not in FORMATS:
        raise InputError(f"unknown classification format {format!r}; choose from {', '.join(FORMATS)}")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"classification file {str(p)!r} does not exist")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"classification file {str(p)!r} is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"classification file {str(p)!r} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    lines = text.splitlines()
    skip, header = _find_header(lines, p)
    found = _detect(header)
    if format != "auto" and found != format:
        expected = {"bts": _BTS_COLUMNS[:4], "tns": _TNS_REQUIRED, "plain": _PLAIN_REQUIRED}[format]
        raise InputError(f"{p}: the header has no {format} columns (need {', '.join(expected)}); found {found or 'none'}")
    if found is None:
        raise InputError(f"{p}: the header is none of the BTS explorer, TNS or plain formats: {lines[skip][:200]!r}")
    table = ClassificationTable(path=str(p), format=found)
    parse = {"bts": _bts_row, "tns": _tns_row, "plain": _plain_row}[found]
    for line, row in _records(lines, skip):
        try:
            table.rows.append(parse(line, row))
        except ValueError as exc:
            table.errors.append(RowError(line, str(exc)))
    return table


def _find_header(lines: list[str], path: Path) -> tuple[int, list[str]]:
    """Index and cells of the header line: the first line, or the second when the first is TNS's date."""
    for i in range(min(2, len(lines))):
        cells = next(csv.reader([lines[i]]), [])
        if _detect(cells) is not None or i == 1:
            return i, cells
    if not lines:
        raise InputError(f"{path}: empty classification file")
    return 0, next(csv.reader([lines[0]]), [])


def _detect(header: Iterable[str]) -> str | None:
    names = {h.strip() for h in header}
    if {"ZTFID", "type", "peakmag"} <= names:
        return "bts"
    if set(_TNS_REQUIRED) <= names:
        return "tns"
    if set(_PLAIN_REQUIRED) <= names:
        return "plain"
    return None


def _records(lines: list[str], header_at: int) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for each data line; a row with the wrong cell count is kept for the parser to refuse."""
    header = [h.strip() for h in next(csv.reader([lines[header_at]]))]
    reader = csv.reader(io.StringIO("\n".join(lines[header_at + 1:])))
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a field over csv's limit (128 KiB), a broken quote: this row only
            yield header_at + 1 + reader.line_num, {"__error__": f"unreadable CSV row: {exc}"}
            continue
        line = header_at + 1 + reader.line_num  # the record's (last) physical line
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            yield line, {"__error__": f"{len(cells)} cells where the header has {len(header)}"}
            continue
        yield line, {k: v.strip() for k, v in zip(header, cells)}


def _check(row: dict[str, str]) -> None:
    if "__error__" in row:
        raise ValueError(row["__error__"])


def _number(row: dict[str, str], key: str, *, lo: float = -math.inf, hi: float = math.inf) -> float | None:
    text = row.get(key, "")
    if text.lower() in _MISSING:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{key} is not a number: {text[:40]!r}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{key} {value} is outside [{lo}, {hi}]")
    return value


def _angle(text: str, key: str, is_ra: bool) -> float | None:
    """Degrees from decimal degrees or sexagesimal (``12:02:05.86`` hours for RA, ``+59:35:36.9``)."""
    if text.lower() in _MISSING:
        return None
    if ":" not in text and " " not in text.strip():
        value = _number({key: text}, key)
    else:
        parts = re.split(r"[:\s]+", text.strip())
        try:
            a, b, c = (float(x) for x in (parts + ["0", "0"])[:3])
        except ValueError:
            raise ValueError(f"{key} is not an angle: {text[:40]!r}") from None
        sign = -1.0 if text.strip().startswith("-") else 1.0
        value = sign * (abs(a) + b / 60.0 + c / 3600.0) * (15.0 if is_ra else 1.0)
    lo, hi = (0.0, 360.0) if is_ra else (-90.0, 90.0)
    if value is None or not lo <= value <= hi:
        raise ValueError(f"{key} {text[:40]!r} is outside [{lo}, {hi}] degrees")
    return value


def _type(text: str) -> str | None:
    return None if text.lower() in _MISSING else text


def _object_id(text: str | None, line_key: str) -> str | None:
    if not text or text.lower() in _MISSING:
        return None
    if not _ZTF_ID.fullmatch(text):
        raise ValueError(f"{line_key} {text[:40]!r} is not a ZTF objectId (ZTFyyaaaaaaa)")
    return text


def _bts_row(line: int, row: dict[str, str]) -> Classification:
    _check(row)
    type_ = _type(row.get("type", ""))
    peak = _number(row, "peakmag", lo=-5.0, hi=30.0)
    return Classification(
        line=line, object_id=_object_id(row.get("ZTFID"), "ZTFID"), name=_type(row.get("IAUID", "")),
        ra=_angle(row.get("RA", ""), "RA", True), dec=_angle(row.get("Dec", ""), "Dec", False),
        type=type_, bright=bright_from(type_, peak), peak_mag=peak, classified_jd=None)


def _tns_row(line: int, row: dict[str, str]) -> Classification:
    _check(row)
    ztf = [m for m in _ZTF_ID.findall(row.get("internal_names", ""))]
    type_ = _type(row.get("type", ""))
    mag = _number(row, "discoverymag", lo=-5.0, hi=30.0)
    name = f"{row.get('name_prefix', '')} {row.get('name', '')}".strip() or None
    if name is None and not ztf:
        raise ValueError("neither a name nor a ZTF internal name")
    return Classification(
        line=line, object_id=ztf[0] if ztf else None, name=name,
        ra=_angle(row.get("ra", ""), "ra", True), dec=_angle(row.get("declination", ""), "declination", False),
        type=type_, bright=bright_from(type_, mag), peak_mag=mag,
        classified_jd=_date_jd(row.get("lastmodified", ""), "lastmodified") if type_ else None)


def _plain_row(line: int, row: dict[str, str]) -> Classification:
    _check(row)
    object_id = _object_id(row.get("objectId"), "objectId")
    if object_id is None:
        raise ValueError("objectId is empty")
    flag = row.get("bright", "").lower()
    if flag in ("1", "true", "yes"):
        bright: bool | None = True
    elif flag in ("0", "false", "no"):
        bright = False
    elif flag in _MISSING:
        bright = None
    else:
        raise ValueError(f"bright {flag[:20]!r} is not 1/0/true/false or empty")
    return Classification(line=line, object_id=object_id, name=None, ra=None, dec=None,
                          type=_type(row.get("type", "")), bright=bright, peak_mag=None,
                          classified_jd=_date_jd(row.get("classified_at", ""), "classified_at"))


def _date_jd(text: str, key: str) -> float | None:
    """JD of an ISO date/time (UTC when no zone) or of a JD written as a number."""
    if text.lower() in _MISSING:
        return None
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None:
        if not 2400000.0 < value < 2600000.0:
            raise ValueError(f"{key} {text[:40]!r} is neither an ISO date nor a JD")
        return value
    try:
        when = dt.datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise ValueError(f"{key} {text[:40]!r} is neither an ISO date nor a JD") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return unix_to_jd(when.timestamp())


def read_save_times(path: str | Path) -> tuple[dict[str, float], list[RowError]]:
    """The human scanners' save times: a CSV ``objectId, save_jd`` (the simulator's
    ``scanner_saves.csv``; an empty ``save_jd`` means never saved).

    Raises
    ------
    InputError
        The file is missing, too large or has no ``objectId`` and ``save_jd`` columns.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"save-time file {str(p)!r} does not exist")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"save-time file {str(p)!r} is larger than {MAX_FILE_BYTES} bytes")
    lines = p.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    header = [h.strip() for h in next(csv.reader(lines[:1]), [])]
    if not {"objectId", "save_jd"} <= set(header):
        raise InputError(f"{p}: a save-time file needs the columns objectId, save_jd; found {header[:10]}")
    saves: dict[str, float] = {}
    errors: list[RowError] = []
    for line, row in _records(lines, 0):
        try:
            _check(row)
            object_id = _object_id(row.get("objectId"), "objectId")
            jd = _date_jd(row.get("save_jd", ""), "save_jd")
        except ValueError as exc:
            errors.append(RowError(line, str(exc)))
            continue
        if object_id is not None and jd is not None:
            saves[object_id] = jd
    return saves, errors
