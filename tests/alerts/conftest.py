"""Fixtures of the ingest tests: the real packets of one night, and a guard that the compiled
decoder (not fastavro's reader) did the reading."""

from __future__ import annotations

import types

import fastavro
import pytest

from alerts.samples import load_packet, real_avro_files


@pytest.fixture
def night(real_avro_dir) -> tuple[dict, list[dict]]:
    """The writer schema and records of the real 4.01 packets (one night of 2023)."""
    records, schema = [], None
    for path in real_avro_files(real_avro_dir):
        packet_schema, (record,) = load_packet(path)
        if record["schemavsn"] == "4.01":
            schema = packet_schema
            records.append(record)
    return schema, records


@pytest.fixture
def fast_path_only(monkeypatch):
    """Make any use of fastavro's readers fail: what reads must be the compiled decoder."""
    def refuse(*args, **kwargs):
        raise AssertionError("fastavro's reader was used")

    only_parsing = types.SimpleNamespace(parse_schema=fastavro.parse_schema, reader=refuse,
                                         schemaless_reader=refuse)
    monkeypatch.setattr("brightscan.alerts.avro.fastavro", only_parsing)
