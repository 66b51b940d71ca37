"""The Avro schema of simulated alerts (ZTF alert schema 4.01 layout) and a fast packet encoder.

The schema is written here as code: the ``candidate`` record lists every field of ZTF schema 4.01
with its type (the pipeline and the published BTSbot models read about thirty of them; the others
are kept so that packets look like ZTF's to any tool), ``prv_candidates`` holds the 4.01
``prv_candidate`` record (detections carry ``candid``; non-detections have ``candid``, ``magpsf``
and friends null and ``diffmaglim`` set), and three ``cutout`` records hold gzipped FITS stamps.
``fp_hists`` (forced photometry, nullable in 4.x) is left out.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import fastavro

SCHEMA_VERSION = "4.01"
PUBLISHER = "ZTF (www.ztf.caltech.edu)"

# Fixed sync marker: the container bytes of a packet then depend only on its content (determinism).
SYNC_MARKER = b"brightscan-sim\x00\x01"

# (name, avro type) of fields that are never null.
_CANDIDATE_REQUIRED = [
    ("jd", "double"), ("fid", "int"), ("pid", "long"), ("programid", "int"), ("candid", "long"),
    ("isdiffpos", "string"), ("ra", "double"), ("dec", "double"), ("magpsf", "float"),
    ("sigmapsf", "float"), ("ranr", "double"), ("decnr", "double"), ("ndethist", "int"),
    ("ncovhist", "int"), ("nmtchps", "int"), ("rfid", "long"), ("jdstartref", "double"),
    ("jdendref", "double"), ("nframesref", "int"), ("rbversion", "string"), ("nmatches", "int"),
    ("drbversion", "string"),
]
# Nullable fields, in 4.01 order, by type.
_CANDIDATE_NULLABLE = {
    "float": (
        "diffmaglim xpos ypos chipsf magap sigmagap distnr magnr sigmagnr chinr sharpnr sky magdiff "
        "fwhm classtar mindtoedge magfromlim seeratio aimage bimage aimagerat bimagerat elong rb "
        "ssdistnr ssmagnr sumrat magapbig sigmagapbig sgmag1 srmag1 simag1 szmag1 sgscore1 "
        "distpsnr1 sgmag2 srmag2 simag2 szmag2 sgscore2 distpsnr2 sgmag3 srmag3 simag3 szmag3 "
        "sgscore3 distpsnr3 dsnrms ssnrms dsdiff magzpsci magzpsciunc magzpscirms clrcoeff clrcounc "
        "zpclrcov zpmed clrmed clrrms neargaia neargaiabright maggaia maggaiabright exptime drb"
    ).split(),
    "int": "nid rcid field nneg nbad tooflag".split(),
    "long": "tblid objectidps1 objectidps2 objectidps3".split(),
    "double": "jdstarthist jdendhist scorr".split(),
    "string": "pdiffimfilename programpi ssnamenr".split(),
}
_PRV_REQUIRED = [("jd", "double"), ("fid", "int"), ("pid", "long"), ("programid", "int"), ("rbversion", "string")]
_PRV_NULLABLE = {
    "long": ["candid", "tblid"],
    "string": ["isdiffpos", "pdiffimfilename", "programpi", "ssnamenr"],
    "double": ["ra", "dec", "ranr", "decnr", "scorr"],
    "int": ["nid", "rcid", "field", "nneg", "nbad"],
    "float": (
        "diffmaglim xpos ypos magpsf sigmapsf chipsf magap sigmagap distnr magnr sigmagnr chinr "
        "sharpnr sky magdiff fwhm classtar mindtoedge magfromlim seeratio aimage bimage aimagerat "
        "bimagerat elong rb ssdistnr ssmagnr sumrat magapbig sigmagapbig magzpsci magzpsciunc "
        "magzpscirms clrcoeff clrcounc"
    ).split(),
}


def _fields(required: list[tuple[str, str]], nullable: dict[str, list[str]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": name, "type": kind} for name, kind in required]
    for kind, names in nullable.items():
        out += [{"name": name, "type": ["null", kind], "default": None} for name in names]
    return out


def alert_schema() -> dict[str, Any]:
    """The alert schema as a JSON-like dict (a ZTF 4.01 ``ztf.alert`` record).

    Returns
    -------
    dict
        Avro schema with records ``ztf.alert``, ``ztf.alert.candidate``,
        ``ztf.alert.prv_candidate`` and ``ztf.alert.cutout``.
    """
    candidate = {
        "type": "record", "name": "candidate", "namespace": "ztf.alert", "version": SCHEMA_VERSION,
        "fields": _fields(_CANDIDATE_REQUIRED, _CANDIDATE_NULLABLE),
    }
    prv_candidate = {
        "type": "record", "name": "prv_candidate", "namespace": "ztf.alert", "version": SCHEMA_VERSION,
        "fields": _fields(_PRV_REQUIRED, _PRV_NULLABLE),
    }
    cutout = {
        "type": "record", "name": "cutout", "namespace": "ztf.alert", "version": SCHEMA_VERSION,
        "fields": [{"name": "fileName", "type": "string"}, {"name": "stampData", "type": "bytes"}],
    }
    return {
        "type": "record", "name": "alert", "namespace": "ztf", "version": SCHEMA_VERSION,
        "doc": "avro alert schema for ZTF (www.ztf.caltech.edu), as written by the brightscan simulator",
        "fields": [
            {"name": "schemavsn", "type": "string"},
            {"name": "publisher", "type": "string"},
            {"name": "objectId", "type": "string"},
            {"name": "candid", "type": "long"},
            {"name": "candidate", "type": candidate},
            {"name": "prv_candidates", "type": ["null", {"type": "array", "items": prv_candidate}], "default": None},
            {"name": "cutoutScience", "type": ["null", cutout], "default": None},
            {"name": "cutoutTemplate", "type": ["null", "ztf.alert.cutout"], "default": None},
            {"name": "cutoutDifference", "type": ["null", "ztf.alert.cutout"], "default": None},
        ],
    }


@lru_cache(maxsize=1)
def parsed_schema() -> dict[str, Any]:
    """The parsed (fastavro) schema, built once per process."""
    return fastavro.parse_schema(alert_schema())


@lru_cache(maxsize=1)
def _container_header() -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, parsed_schema(), [], codec="null", sync_marker=SYNC_MARKER)
    return buf.getvalue()


def _zigzag_long(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(value: str) -> bytes:
    data = value.encode("utf-8")
    return _zigzag_long(len(data)) + data


@lru_cache(maxsize=1)
def _record_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    fields = {f["name"]: f["type"] for f in alert_schema()["fields"]}
    prv = fields["prv_candidates"][1]["items"]
    return fastavro.parse_schema(fields["candidate"]), fastavro.parse_schema(prv)


def encode_prv_candidate(record: dict[str, Any]) -> bytes:
    """Binary encoding of one ``prv_candidate`` record (to be reused by every later alert)."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, _record_schemas()[1], record)
    return buf.getvalue()


def encode_packet(
    object_id: str, candid: int, candidate: dict[str, Any], prv_candidates: list[bytes] | None,
    cutouts: tuple[tuple[str, bytes], tuple[str, bytes], tuple[str, bytes]],
) -> bytes:
    """One alert as a complete Avro container file (schema embedded, one record), like ZTF's.

    The record is assembled from pieces in Avro's binary encoding: previous candidates arrive
    already encoded (:func:`encode_prv_candidate`), because the same ones recur in many alerts of a
    source and encoding them dominated the run time. The bytes are identical to what
    ``fastavro.writer`` produces for the same record under :func:`alert_schema`.

    Parameters
    ----------
    object_id : str
        ``objectId``.
    candid : int
        ``candid`` of the alert (also in ``candidate``).
    candidate : dict
        The ``candidate`` record.
    prv_candidates : list of bytes or None
        Encoded ``prv_candidate`` records, oldest first; ``None`` (or empty) for none.
    cutouts : tuple of (fileName, stampData)
        Science, template and difference cutouts.

    Returns
    -------
    bytes
        Container file bytes readable by ``fastavro.reader``.
    """
    body = io.BytesIO()
    fastavro.schemaless_writer(body, _record_schemas()[0], candidate)
    parts = [_string(SCHEMA_VERSION), _string(PUBLISHER), _string(object_id), _zigzag_long(candid), body.getvalue()]
    if prv_candidates:
        parts += [b"\x02", _zigzag_long(len(prv_candidates)), *prv_candidates, b"\x00"]
    else:
        parts.append(b"\x00")
    for name, data in cutouts:
        parts += [b"\x02", _string(name), _zigzag_long(len(data)), data]
    payload = b"".join(parts)
    return b"".join((_container_header(), _zigzag_long(1), _zigzag_long(len(payload)), payload, SYNC_MARKER))
