"""Fixtures for the autoscan tests: a small night of real ZTF packets re-labelled as new sources,
a randomly initialised tiny model, and database URLs (SQLite always, PostgreSQL when
``BRIGHTSCAN_TEST_POSTGRES_URL`` is set)."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import fastavro
import numpy as np
import pytest
import sqlalchemy as sa

from brightscan.alerts import Alert, decode_avro
from brightscan.errors import AlertError

NIGHT_JD0 = 2461000.55  # 2025-11-21 01:12 UTC, later than every template packet
NIGHT = "2025-11-21"  # the UTC date of the whole night (alerts span < 0.4 days from NIGHT_JD0)


@functools.lru_cache(maxsize=2)
def usable_templates(avro_dir: Path) -> list[tuple[dict, dict]]:
    """(writer schema, record) of the real packets that preprocess cleanly."""
    from brightscan.preprocess import preprocess_alert

    out = []
    for path in sorted(avro_dir.glob("*.avro")):
        data = path.read_bytes()
        alert = next(iter(decode_avro(data, str(path))))
        if not isinstance(alert, Alert):
            continue
        try:
            preprocess_alert(alert, "icml2023")
        except AlertError:  # a template we cannot use (overflowing cutout...)
            continue
        with open(path, "rb") as fh:
            reader = fastavro.reader(fh)
            out.append((reader.writer_schema, next(iter(reader))))
    return out


def object_id(i: int) -> str:
    letters = ""
    for _ in range(7):
        i, r = divmod(i, 26)
        letters = chr(97 + r) + letters
    return f"ZTF25{letters}"


def write_night(avro_dir: Path, out: Path, *, n_sources: int, per_source: int, seed: int,
                span_days: float = 0.3, jd0: float = NIGHT_JD0, first_source: int = 0,
                mag0: float | None = None) -> list[dict]:
    """Write one Avro file per alert into ``out`` (real packets, new objectId/candid/jd): sources
    ``first_source`` .. ``first_source + n_sources - 1``, alerts from ``jd0`` over ``span_days``,
    magnitudes brightening by 0.1 per alert from the packet's (or from ``mag0``).

    Returns the written alerts' ``{candid, objectId, jd}`` rows.
    """
    rng = np.random.default_rng(seed)
    templates = usable_templates(avro_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in range(first_source, first_source + n_sources):
        schema, base = templates[int(rng.integers(len(templates)))]
        jds = np.sort(jd0 + rng.uniform(0, span_days, per_source))
        for k, jd in enumerate(jds):
            record = copy.deepcopy(base)
            candid = 3_000_000_000_000_000_000 + s * 1000 + k
            record["objectId"] = object_id(s)
            record["candid"] = candid
            record["candidate"]["candid"] = candid
            record["candidate"]["jd"] = float(jd)
            start = float(record["candidate"]["magpsf"]) if mag0 is None else mag0
            record["candidate"]["magpsf"] = start - 0.1 * k
            with open(out / f"{candid}.avro", "wb") as fh:
                fastavro.writer(fh, schema, [record])
            rows.append({"candid": candid, "objectId": object_id(s), "jd": float(jd)})
    return rows


def skyportal_config(path: Path, db_url: str, *, skyportal: str, service: str, allocation_id: int = 1) -> Path:
    """Write an ``autoscan.toml``: gt1 at threshold 0 (every source passes: many actions), the
    SkyPortal sink with the given ``[sink.skyportal]`` lines, an SEDM follow-up on
    ``allocation_id``, and the given ``[service]`` lines."""
    path.write_text(f"""
[database]
url = "{db_url}"

[policy]
name = "gt1"
threshold = 0.0

[sink]
kind = "skyportal"

[sink.skyportal]
{skyportal.strip()}

[sink.skyportal.followup]
allocation_id = {allocation_id}
facility = "SEDM"
priority = 5
observation_type = "IFU"

[service]
{service.strip()}
""")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised ``mi_cnn.tiny`` (icml2023 features) saved with the model package."""
    from brightscan.model import create_model, save_model

    return save_model(create_model("mi_cnn.tiny", seed=0), tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture
def night(real_avro_dir, tmp_path) -> tuple[Path, list[dict]]:
    """12 sources x 3 alerts in one directory."""
    rows = write_night(real_avro_dir, tmp_path / "night", n_sources=12, per_source=3, seed=1)
    return tmp_path / "night", rows


def postgres_url() -> str | None:
    return os.environ.get("BRIGHTSCAN_TEST_POSTGRES_URL") or None


def reset_database(url: str) -> None:
    """Drop every autoscan table (the test database belongs to the tests)."""
    from brightscan.autoscan.store import metadata, schema_version

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        schema_version.drop(conn, checkfirst=True)
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """A fresh database: a SQLite file, and PostgreSQL when BRIGHTSCAN_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'autoscan.db'}"
    url = postgres_url()
    if url is None:
        pytest.skip("PostgreSQL tests need BRIGHTSCAN_TEST_POSTGRES_URL (e.g. postgresql+psycopg://user@127.0.0.1:5432/db)")
    reset_database(url)
    return url
