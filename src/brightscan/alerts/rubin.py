"""Rubin (LSST) alert packets: the record type, and its ZTF-named view for the shared machinery.

A Rubin packet (schemas ``lsst.v7_x`` to ``lsst.v11_x``) holds the triggering ``diaSource``, the
object's earlier detections (``prvDiaSources``) and forced photometry (``prvDiaForcedSources``),
the ``diaObject`` summary, solar-system records (``ssSource``, ``mpc_orbits``) and three cutouts
(uncompressed FITS in nJy). :class:`RubinAlert` keeps what the preprocessing reads, and also exposes the
triggering source and its detections under ZTF's names (``candidate``, ``prv_candidates``: ``jd``,
``magpsf``, ``sigmapsf``, ``isdiffpos``, ``fid``, ``candid``), so that the causal history machinery
of :mod:`brightscan.preprocess.features` and the autoscan service work on both surveys unchanged.

Magnitudes follow Rubin's AB flux scale: ``mag = 31.4 - 2.5 log10(|psfFlux| / nJy)``, with
``isdiffpos`` saying the sign of the difference flux (ZTF keeps negative subtractions the same way).
Times: ``jd = midpointMjdTai + 2400000.5`` (TAI; ZTF's ``jd`` is UTC, 37 s earlier, which no
feature here can see).

What is refused at reading time, with the reason (docs/rubin.md): a packet without a
``diaSource`` record or a usable ``diaSourceId``; a solar-system alert (a non-zero ``ssObjectId``,
or an ``ssSource`` naming one); a packet without a ``diaObject`` (nothing to attach a history to).
Missing cutouts are the cutout stage's business, as for ZTF.

What is read (:func:`rubin_projection`): the Avro readers decode each earlier detection in
``prvDiaSources`` with the fields of :data:`HISTORY_FIELDS` only (the eight the causal history
features and autoscan's photometry read, of ~100), as :class:`~brightscan.alerts.columns.Columns`
(arrays, not a dict per source), and step over ``prvDiaForcedSources`` and the top-level fields
nothing reads without decoding them (no feature uses forced photometry). LSSTCam alerts carry
~350 earlier sources and ~400 forced points; decoding them whole cost 20 times a ZTF alert
(docs/rubin.md, "Speed, measured"). The ZTF-named views of the earlier sources
(:class:`ZtfViews`) are built only when something reads them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from brightscan.alerts.columns import Columns
from brightscan.alerts.records import CUTOUT_FIELDS, Rejection
from brightscan.alerts.records import _as_int  # one rule for ids: ints or digit strings, never floats

__all__ = ["BANDS", "HISTORY_FIELDS", "HISTORY_VIEW", "MJD_TO_JD", "RUBIN_PROJECTION", "RubinAlert", "ZtfViews",
           "flux_to_mag", "is_rubin_record", "rubin_alert_from_record", "rubin_projection"]

#: Rubin's six filters; ``fid`` in the ZTF-named view is the 1-based index in this tuple.
BANDS: tuple[str, ...] = ("u", "g", "r", "i", "z", "y")
#: Add to an MJD to get a Julian date.
MJD_TO_JD = 2400000.5
#: AB zero point of a flux in nJy: 31.4 = -2.5 log10(1e-9 Jy / 3631 Jy).
NJY_ZERO_POINT = 31.4
_MAG_ERR = 2.5 / math.log(10)
_FID = {band: number for number, band in enumerate(BANDS, start=1)}
#: The fields of an earlier diaSource that the history features and autoscan's photometry
#: (``autoscan.actions.PHOTOMETRY_KEYS``) read: all that is decoded of one. Its other ZTF-named
#: fields (``extendedness``, ``snr``) are None.
HISTORY_FIELDS = frozenset({"diaSourceId", "midpointMjdTai", "psfFlux", "psfFluxErr", "band", "reliability",
                            "ra", "dec"})
#: What is read of each earlier detection's ZTF-named view (``preprocess.rubin``, ``History``, photometry).
HISTORY_VIEW = ("candid", "jd", "magpsf", "sigmapsf", "isdiffpos", "fid", "band", "psfFlux", "psfFluxErr",
                "reliability", "ra", "dec")
#: What the Avro readers decode of a Rubin packet's long parts (``avro_compiler``'s projection).
RUBIN_PROJECTION: Mapping[str, frozenset[str]] = MappingProxyType({
    "prvDiaSources": HISTORY_FIELDS,
    "prvDiaForcedSources": frozenset(),  # walked over, not decoded
})
#: The top-level fields :func:`rubin_alert_from_record` reads (whole, or as projected above).
_READ_FIELDS = frozenset({"diaSourceId", "diaSource", "prvDiaSources", "diaObject", "ssSource", *CUTOUT_FIELDS,
                          "lsst_schema_version", "schemavsn"})


@dataclass(frozen=True, slots=True)
class RubinAlert:
    """One Rubin alert packet, as read from any container or Kafka message.

    ``dia_source_id`` (the alert's ``candid``) and ``dia_object_id`` (its ``objectId``, as text,
    as ZTF's object ids are) identify it; ``cutouts`` maps each of :data:`CUTOUT_FIELDS` to the
    FITS bytes (or None). ``prv_dia_sources`` holds the :data:`HISTORY_FIELDS` of each earlier
    source when read from Avro, as :class:`~brightscan.alerts.columns.Columns` (a tuple of dicts
    with every field from Parquet); forced photometry is not kept. ``candidate`` and
    ``prv_candidates`` are the ZTF-named views built by :func:`rubin_alert_from_record`, the
    latter lazily (:class:`ZtfViews`).
    """

    survey: ClassVar[str] = "rubin"

    dia_source_id: int
    dia_object_id: str
    dia_source: Mapping[str, Any]
    prv_dia_sources: Sequence[Mapping[str, Any]]
    dia_object: Mapping[str, Any]
    cutouts: Mapping[str, bytes | None]
    source: str
    candidate: Mapping[str, Any]
    prv_candidates: Sequence[Mapping[str, Any]]
    schemavsn: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def candid(self) -> int:
        """The triggering ``diaSourceId`` (ZTF's name for an alert's id)."""
        return self.dia_source_id

    @property
    def object_id(self) -> str:
        """The ``diaObjectId``, as text."""
        return self.dia_object_id

    @property
    def jd(self) -> float:
        """Julian date (TAI) of the triggering visit's midpoint."""
        return float(self.candidate["jd"])


def is_rubin_record(record: Mapping[str, Any]) -> bool:
    """Whether a decoded packet (Avro record, Parquet row) is Rubin's rather than ZTF's."""
    return "diaSource" in record and "candidate" not in record


def rubin_projection(schema: Mapping[str, Any]) -> Mapping[str, frozenset[str]] | None:
    """What to decode of a writer schema of Rubin packets (any version, a broker's), else None.

    :data:`RUBIN_PROJECTION`, plus: ``ssSource`` only its ``ssObjectId`` (the solar-system
    check), and every top-level field :func:`rubin_alert_from_record` does not read walked over
    and left out (``mpc_orbits``, brokers' own columns such as Fink's ``lc_features``, ``xm``,
    ``clf``: ~40 % of a Fink packet's values once the history is projected).
    """
    names = {f.get("name") for f in schema.get("fields", ()) if isinstance(f, Mapping)}
    if not {"diaSource", "prvDiaSources"} <= names or "candidate" in names:
        return None
    return MappingProxyType({**{name: frozenset() for name in names - _READ_FIELDS}, **RUBIN_PROJECTION,
                             "ssSource": frozenset({"ssObjectId"})})


def flux_to_mag(flux: Any, flux_err: Any = None) -> tuple[float | None, float | None]:
    """AB magnitude of ``|flux|`` (nJy) and its error; ``(None, None)`` for a zero or unusable flux."""
    if not _finite(flux) or flux == 0:
        return None, None
    mag = NJY_ZERO_POINT - 2.5 * math.log10(abs(flux))
    err = _MAG_ERR * flux_err / abs(flux) if _finite(flux_err) and flux_err > 0 else None
    return mag, err


def rubin_alert_from_record(record: Mapping[str, Any], source: str) -> RubinAlert | Rejection:
    """Validate a decoded Rubin packet and build a :class:`RubinAlert`, or say why not.

    Parameters
    ----------
    record : mapping
        The packet as fastavro or pyarrow decodes it (any schema from 7.x to 11.x; brokers'
        extra columns are ignored).
    source : str
        Where it came from (file, ``file#row``, ``topic[partition]@offset``).
    """
    dia_source = record.get("diaSource")
    if not isinstance(dia_source, Mapping):
        return Rejection(None, None, source, "read", "Rubin packet has no diaSource record")
    # v7 packets have no top-level diaSourceId; the triggering source always carries its own.
    candid = _as_int(record.get("diaSourceId")) or _as_int(dia_source.get("diaSourceId"))
    object_id = _object_id(record, dia_source)

    def reject(reason: str) -> Rejection:
        return Rejection(candid, object_id, source, "read", reason)

    if candid is None:
        return reject("Rubin packet has no integer diaSourceId")
    ss_object = _solar_system_id(record, dia_source)
    if ss_object is not None:
        return reject(f"solar-system alert (ssObjectId {ss_object}): moving objects are not scored")
    dia_object = record.get("diaObject")
    if not isinstance(dia_object, Mapping) or object_id is None:
        return reject("Rubin packet has no diaObject (no object to attach a history to)")
    if not _finite(dia_source.get("midpointMjdTai")):
        return reject("diaSource has no numeric midpointMjdTai")
    prv = record.get("prvDiaSources") or ()
    if isinstance(prv, Columns):  # the projected reader's rows: records by construction
        history: Sequence[Mapping[str, Any]] = prv
    elif isinstance(prv, (list, tuple)) and all(isinstance(p, Mapping) for p in prv):
        history = tuple(prv)
    else:
        return reject("prvDiaSources is not a list of records")
    return RubinAlert(
        dia_source_id=candid,
        dia_object_id=object_id,
        dia_source=dia_source,
        prv_dia_sources=history,
        dia_object=dia_object,
        cutouts={name: _stamp_bytes(record.get(name)) for name in CUTOUT_FIELDS},
        source=source,
        candidate=ztf_view(dia_source, candid),
        prv_candidates=ZtfViews(history),
        schemavsn=_schema_version(record),
    )


class ZtfViews(Sequence[Mapping[str, Any]]):
    """The ZTF-named views (:func:`ztf_view`) of earlier sources, built when first read.

    The history features of ``preprocess.rubin`` compute from the earlier sources' columns and
    never read these; the shared ZTF machinery (``causal_detections`` with records from a
    ``History``, autoscan's photometry) does, and then gets each view as it was always built.
    """

    __slots__ = ("_views", "sources")

    def __init__(self, sources: Sequence[Mapping[str, Any]]) -> None:
        self.sources = sources
        self._views: tuple[dict[str, Any], ...] | None = None

    def _built(self) -> tuple[dict[str, Any], ...]:
        if self._views is None:
            self._views = tuple(ztf_view(source) for source in self.sources)
        return self._views

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: Any) -> Any:
        return self._built()[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._built())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == len(self) and all(mine == theirs for mine, theirs in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ZtfViews({len(self)} earlier sources)"

    def __getstate__(self) -> Sequence[Mapping[str, Any]]:
        return self.sources

    def __setstate__(self, state: Sequence[Mapping[str, Any]]) -> None:
        self.sources, self._views = state, None


def ztf_view(dia_source: Mapping[str, Any], candid: int | None = None) -> dict[str, Any]:
    """A diaSource under ZTF's candidate names, plus the Rubin fields the features read.

    ``magpsf`` is None when ``psfFlux`` is zero or not finite (the history then skips it, as it
    skips ZTF's non-detections). Called for every earlier source (~350 per LSSTCam alert), so
    the common types are tested first; the result is that of :func:`flux_to_mag` and the rules
    of :func:`_finite` and ``_as_int`` either way.
    """
    get = dia_source.get
    flux, flux_err, band, mjd = get("psfFlux"), get("psfFluxErr"), get("band"), get("midpointMjdTai")
    if type(flux) is float and type(flux_err) is float:  # fast path: plain floats
        usable = flux != 0 and math.isfinite(flux)
        mag = NJY_ZERO_POINT - 2.5 * math.log10(abs(flux)) if usable else None
        err = (_MAG_ERR * flux_err / abs(flux) if flux_err > 0 and math.isfinite(flux_err) else None) if usable else None
    else:
        mag, err = flux_to_mag(flux, flux_err)
    if candid is None:
        number = get("diaSourceId")
        candid = number if type(number) is int else _as_int(number)
    return {
        "candid": candid,
        "jd": (mjd + MJD_TO_JD if mjd - mjd == 0 else None) if type(mjd) is float
        else float(mjd) + MJD_TO_JD if _finite(mjd) else None,
        "ra": get("ra"),
        "dec": get("dec"),
        "magpsf": mag,
        "sigmapsf": err,
        "isdiffpos": None if mag is None else ("t" if flux > 0 else "f"),
        "fid": _FID.get(band) if type(band) is str else None,
        "band": band,
        "psfFlux": flux,
        "psfFluxErr": flux_err,
        "reliability": get("reliability"),
        "extendedness": get("extendedness"),
        "snr": get("snr"),
    }


def _object_id(record: Mapping[str, Any], dia_source: Mapping[str, Any]) -> str | None:
    # diaSource.diaObjectId is a long in every schema; Fink's Parquet stores diaObject.diaObjectId
    # as a double, which cannot hold an 18-digit id exactly, so it is the last resort.
    number = _as_int(dia_source.get("diaObjectId"))
    if not number:
        dia_object = record.get("diaObject")
        number = _as_int(dia_object.get("diaObjectId")) if isinstance(dia_object, Mapping) else None
    return str(number) if number else None


def _solar_system_id(record: Mapping[str, Any], dia_source: Mapping[str, Any]) -> int | None:
    # Rubin writes ssObjectId 0 (not null) for "no solar-system association".
    number = _as_int(dia_source.get("ssObjectId"))
    if number:
        return number
    ss_source = record.get("ssSource")
    if isinstance(ss_source, Mapping):
        number = _as_int(ss_source.get("ssObjectId"))
        return number or None
    return None


def _schema_version(record: Mapping[str, Any]) -> str | None:
    version = record.get("lsst_schema_version") or record.get("schemavsn")
    return str(version) if version is not None else None


def _stamp_bytes(cutout: Any) -> bytes | None:
    return bytes(cutout) if isinstance(cutout, (bytes, bytearray, memoryview)) and len(cutout) else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
