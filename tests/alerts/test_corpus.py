"""The corpus test: the real alerts of ../shared, and the same alerts re-written in every container,
codec and layout we read. Whatever the container: the same candids, bit-identical model inputs
(triplet and features), identical scores from the published production model."""

from __future__ import annotations

import tarfile
import uuid
from collections import defaultdict
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from alerts.samples import avro_bytes, load_packet, real_avro_files, spark_export
from brightscan.alerts import Alert, Rejection, read_alerts
from brightscan.errors import AlertError
from brightscan.model import import_keras
from brightscan.preprocess import preprocess_alert
from brightscan.score import Scorer

CODECS = ("null", "deflate", "snappy", "zstandard", "bzip2", "xz")


@pytest.fixture(scope="module")
def scorer(tmp_path_factory) -> Scorer:
    """The published production model (v1.0.1), imported without TensorFlow."""
    from tests.conftest import require_shared

    source = require_shared("models", "btsbot-published", "v1.0.1")
    model_dir = import_keras(source, tmp_path_factory.mktemp("model") / "v1.0.1")
    return Scorer(model_dir, batch_size=16, device="cpu")


def fingerprint(items, scorer: Scorer) -> dict[int, tuple]:
    """candid -> (triplet bytes, feature bytes, score), or the preprocessing rejection."""
    alerts = [i for i in items if isinstance(i, Alert)]
    assert not [i for i in items if isinstance(i, Rejection)], "every real alert is readable"
    assert len({a.candid for a in alerts}) == len(alerts)
    alerts.sort(key=lambda a: a.candid)  # the same batches whatever the container's order
    results = scorer.score_alerts(alerts, overlap=False)
    scores = {row["candid"]: float(s) for row, s in zip(results.rows, results.score)}
    out = {}
    for alert in alerts:
        try:
            triplet, features = preprocess_alert(alert, "v1")
        except AlertError as exc:
            out[alert.candid] = (exc.stage, exc.reason)
            assert alert.candid not in scores
            continue
        out[alert.candid] = (triplet.tobytes(), features.tobytes(), scores[alert.candid])
    return out


def _tar_gz(path: Path, files: list[Path]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for file in files:
            archive.add(file, arcname=f"ztf_public_20231012/{file.name}")
    return path


def avro_containers(real_dir: Path, out: Path) -> dict[str, list]:
    """The real packets re-written: each codec, several per file, a Spark export, a tarball,
    hive-partitioned Parquet, and the in-memory filesystem."""
    files = real_avro_files(real_dir)
    by_version: dict[str, tuple[dict, list[dict]]] = {}
    for path in files:
        schema, (record,) = load_packet(path)
        by_version.setdefault(record["schemavsn"], (schema, []))[1].append(record)
    containers: dict[str, list] = defaultdict(list)
    memory = fsspec.filesystem("memory")
    root = f"/corpus-{uuid.uuid4().hex}"
    for version, (schema, records) in by_version.items():
        for codec in CODECS:
            path = out / codec / f"v{version}.avro"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(avro_bytes(schema, records, codec=codec, sync_interval=200_000))
            containers[f"avro {codec}"].append(path)
        spark_schema, rows = spark_export(schema, records)
        path = out / "spark" / f"part-0000{len(containers['spark export'])}-c000.avro"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(avro_bytes(spark_schema, rows, codec="snappy"))
        containers["spark export"].append(path)
        memory.pipe(f"{root}/v{version}.avro", avro_bytes(schema, records, codec="zstandard"))
        part = out / "hive" / f"schemavsn={version}"
        part.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(records), part / "part-00000.snappy.parquet")
    containers["memory://"] = [f"memory://{root}"]
    containers["hive parquet"] = [out / "hive"]
    containers["tar.gz"] = [_tar_gz(out / "night.tar.gz", files)]
    return containers


def parquet_containers(source: Path, out: Path) -> dict[str, list]:
    """One broker Parquet file re-written: hive-partitioned, reordered with extra columns, zstd."""
    table = pq.read_table(source)
    hive = out / source.stem
    ds.write_dataset(table.append_column("night", pa.array([f"n{i % 3}" for i in range(table.num_rows)])),
                     hive, format="parquet", partitioning=["night"], partitioning_flavor="hive",
                     max_rows_per_group=8)
    shuffled = table.select(sorted(table.column_names, reverse=True))
    shuffled = shuffled.append_column("broker_extra", pa.array(range(table.num_rows)))
    pq.write_table(shuffled, out / f"{source.stem}-shuffled.parquet", compression="zstd")
    return {"hive": [hive], "shuffled+zstd": [out / f"{source.stem}-shuffled.parquet"]}


@pytest.mark.slow
def test_avro_corpus_reads_the_same_in_every_container(tmp_path, real_avro_dir, scorer):
    reference = fingerprint(list(read_alerts(real_avro_dir)), scorer)
    assert len(reference) == len(real_avro_files(real_avro_dir))
    assert sum(len(v) == 3 for v in reference.values()) > 30  # most are scored, some rejected
    for name, inputs in avro_containers(real_avro_dir, tmp_path).items():
        got = fingerprint(list(read_alerts(inputs)), scorer)
        assert got.keys() == reference.keys(), name
        assert got == reference, f"{name}: model inputs or scores differ"


@pytest.mark.slow
def test_parquet_corpus_reads_the_same_in_every_layout(tmp_path, real_parquet_dir, scorer):
    for source in sorted(real_parquet_dir.glob("*.parquet")):
        reference = fingerprint(list(read_alerts(source)), scorer)
        for name, inputs in parquet_containers(source, tmp_path).items():
            got = fingerprint(list(read_alerts(inputs)), scorer)
            assert got == reference, f"{source.name} {name}: model inputs or scores differ"


def test_avro_and_fink_parquet_agree_where_they_hold_the_same_alert(real_parquet_dir, scorer):
    """Fink's science layout (all candidate fields as doubles) and its raw-layout copy of the
    same alerts give the same model inputs and scores."""
    science = fingerprint(list(read_alerts(real_parquet_dir / "superluminous.parquet")), scorer)
    others = {}
    for name in ("datatest-part2.parquet", "datatest-part3.parquet"):
        others.update(fingerprint(list(read_alerts(real_parquet_dir / name)), scorer))
    shared = science.keys() & others.keys()
    assert len(shared) > 20
    # Model inputs bit for bit. The scores to float32 rounding only: the two files put an alert in
    # different batches, and oneDNN may sum a convolution in another order for another batch (seen
    # on an AMD EPYC with avx512_bf16: 0.0041485479 against 0.0041485440 for one alert of 57).
    for candid in shared:
        *inputs, score = science[candid]
        *other_inputs, other_score = others[candid]
        assert inputs == other_inputs, candid  # or the same rejection (stage, reason)
        assert score == pytest.approx(other_score, rel=1e-5, abs=1e-7), candid
