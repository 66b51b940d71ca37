"""The paper's heuristics hold in aggregate over a simulated survey."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import fastavro
import numpy as np
import pytest


@pytest.fixture(scope="module")
def by_group(heuristics_survey: Path) -> dict[str, dict[str, np.ndarray]]:
    with open(heuristics_survey / "labels.csv", newline="") as fh:
        labels = {r["objectId"]: r for r in csv.DictReader(fh)}
    columns: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted((heuristics_survey / "alerts").glob("*/*.avro")):
        with open(path, "rb") as fh:
            record = next(iter(fastavro.reader(fh)))
        row = labels[record["objectId"]]
        group = ("bright_sn" if row["label"] == "1" else "dim_sn") if row["class"].startswith("SN") else row["class"]
        c = record["candidate"]
        for name in ("distpsnr1", "sgscore1", "ndethist", "nmtchps", "drb", "magpsf", "chinr", "jdstarthist", "jd"):
            columns[group][name].append(c[name])
    return {g: {k: np.array(v, dtype=float) for k, v in cols.items()} for g, cols in columns.items()}


def test_agn_sit_on_a_catalogued_nucleus_sne_are_offset(by_group) -> None:
    assert np.median(by_group["AGN"]["distpsnr1"]) < 0.5
    assert np.median(by_group["bright_sn"]["distpsnr1"]) > 1.0
    assert np.median(by_group["dim_sn"]["distpsnr1"]) > 0.5


def test_sne_neighbours_are_galaxies_cv_neighbours_stars(by_group) -> None:
    assert np.median(by_group["bright_sn"]["sgscore1"]) < 0.3
    assert np.median(by_group["CV"]["sgscore1"]) > 0.5


def test_agn_and_variables_have_long_histories(by_group) -> None:
    sn_history = np.median(by_group["bright_sn"]["ndethist"])
    assert np.median(by_group["AGN"]["ndethist"]) > 3 * sn_history
    assert np.median(by_group["varstar"]["ndethist"]) > 3 * sn_history
    age = {g: np.median(v["jd"] - v["jdstarthist"]) for g, v in by_group.items()}
    assert age["AGN"] > 200 > age["bright_sn"]


def test_cvs_live_in_crowded_fields(by_group) -> None:
    assert np.median(by_group["CV"]["nmtchps"]) > 2 * np.median(by_group["bright_sn"]["nmtchps"])


def test_bogus_detections_score_low_real_bogus(by_group) -> None:
    assert np.median(by_group["bogus"]["drb"]) < 0.5 < np.median(by_group["bright_sn"]["drb"])


def test_bright_sn_hosts_outshine_dim_sn_hosts(heuristics_survey: Path) -> None:
    with open(heuristics_survey / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["class"].startswith("SN") and r["host_mag"]]
    bright = [float(r["host_mag"]) for r in rows if r["label"] == "1"]
    dim = [float(r["host_mag"]) for r in rows if r["label"] == "0"]
    bright_size = [float(r["host_reff"]) for r in rows if r["label"] == "1"]
    dim_size = [float(r["host_reff"]) for r in rows if r["label"] == "0"]
    assert np.median(bright) < np.median(dim) - 0.5
    assert np.median(bright_size) > np.median(dim_size)


def test_about_a_third_of_sources_positive(heuristics_survey: Path) -> None:
    with open(heuristics_survey / "labels.csv", newline="") as fh:
        labels = [int(r["label"]) for r in csv.DictReader(fh)]
    assert 0.25 < np.mean(labels) < 0.4


def test_scanners_are_nearly_complete_and_pure(heuristics_survey: Path) -> None:
    with open(heuristics_survey / "labels.csv", newline="") as fh:
        labels = {r["objectId"]: r for r in csv.DictReader(fh)}
    with open(heuristics_survey / "scanner_saves.csv", newline="") as fh:
        saved = {r["objectId"] for r in csv.DictReader(fh) if r["save_jd"]}
    # only sources that ever got two alerts brighter than 19 mag can be saved
    positives = {o for o, r in labels.items() if r["label"] == "1"}
    assert len(saved & positives) / len(positives) > 0.8
    assert len(saved & positives) / len(saved) > 0.85
