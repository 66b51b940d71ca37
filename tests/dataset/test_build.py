"""Building a dataset from real alerts (Fink Parquet in ../shared): splits, thinning, features."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brightscan.alerts import Alert, read_alerts
from brightscan.dataset import BuildConfig, build_dataset, iter_batches, open_split, read_dataset_card
from brightscan.errors import ConfigError, InputError
from brightscan.preprocess import feature_names, preprocess_alert
from brightscan.preprocess.history import History


@pytest.fixture(scope="module")
def built(real_parquet_dir_module: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    alerts = [a for a in read_alerts([real_parquet_dir_module]) if isinstance(a, Alert)]
    sources = sorted({a.object_id for a in alerts})
    root = tmp_path_factory.mktemp("build")
    labels = pd.DataFrame({"objectId": sources[:-5], "label": [i % 2 for i in range(len(sources) - 5)],
                           "class": ["SN Ia" if i % 2 else "bogus" for i in range(len(sources) - 5)]})
    labels.to_csv(root / "labels.csv", index=False)
    config = BuildConfig(nmax=2, fractions=(0.6, 0.2, 0.2), seed=3, feature_set="v1")
    card = build_dataset([real_parquet_dir_module], root / "labels.csv", root / "ds", config)
    return root / "ds", card, real_parquet_dir_module


@pytest.fixture(scope="module")
def real_parquet_dir_module() -> Path:
    from tests.conftest import require_shared

    return require_shared("data", "real-alerts", "fink-parquet")


def _tables(ds: Path) -> dict[str, pd.DataFrame]:
    return {s: open_split(ds, s).table for s in ("train", "val", "test")}


def test_splits_are_source_disjoint_and_rows_match(built: tuple[Path, dict, Path]) -> None:
    ds, card, _ = built
    tables = _tables(ds)
    sets = [set(t["objectId"]) for t in tables.values()]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    for split, table in tables.items():
        assert np.load(ds / split / "triplets.npy", mmap_mode="r").shape == (len(table), 63, 63, 3)
        assert card["splits"][split]["alerts"] == len(table)
        assert card["splits"][split]["alerts_per_label"]["1"] == int(table["label"].sum())
    assert read_dataset_card(ds)["nmax"] == 2 and card["feature_set"] == "v1"


def test_train_is_thinned_as_btsbot_does_and_the_rest_is_not(built: tuple[Path, dict, Path]) -> None:
    ds, card, inputs = built
    assert card["build"]["thinning"] == "btsbot"
    tables = _tables(ds)
    history = History.collect([inputs])
    classes = tables["train"].groupby("objectId")["class"].first()
    per_source = tables["train"].groupby("objectId")["candid"]
    assert per_source.size().max() <= 2
    for object_id, candids in per_source:
        unique = {d["candid"]: d["jd"] for d in history.records(object_id)}
        assert len(candids) == min(2, len(unique)) and set(candids) <= set(unique)
        if classes[object_id] == "bogus":  # BTSbot's junk keeps its latest alerts; SNe a random few
            assert set(candids) == set(sorted(unique, key=unique.get)[-2:])
    # every alert is accounted for: stored, thinned, duplicate, unlabelled or rejected
    seen = sum(len(history.records(o)) for o in history.objects())
    stored = sum(len(t) for t in tables.values())
    assert stored + sum(card["skipped"].values()) == seen
    assert card["skipped"]["unlabelled"] == sum(len(history.records(o)) for o in sorted(history.objects())[-5:])
    assert card["skipped"].get("thinned", 0) > 0


def test_features_are_the_scorers_causal_features(built: tuple[Path, dict, Path]) -> None:
    ds, _, inputs = built
    history = History.collect([inputs])
    data = open_split(ds, "val")
    rows = data.table.set_index("candid")
    checked: set[int] = set()
    for alert in read_alerts([inputs]):  # the first copy of a repeated alert is the one stored
        if isinstance(alert, Alert) and alert.candid in rows.index and alert.candid not in checked:
            trip, feats = preprocess_alert(alert, "v1", earlier=history.records(alert.object_id))
            i = int(np.flatnonzero(data.table["candid"].to_numpy() == alert.candid)[0])
            np.testing.assert_array_equal(data.triplets[i], trip)
            np.testing.assert_array_equal(data.features[i], feats.astype(np.float32))
            checked.add(alert.candid)
    assert len(checked) == len(data)


def test_batches_cover_the_rows_with_icml2023_columns(built: tuple[Path, dict, Path]) -> None:
    ds, _, _ = built
    data = open_split(ds, "train", feature_names("icml2023"))
    assert data.features.shape == (len(data), 14)
    seen = []
    for trips, feats, labels in iter_batches(data, np.arange(len(data)), 7, rng=np.random.default_rng(0)):
        assert trips.shape[1:] == (63, 63, 3) and len(feats) == len(labels) == len(trips)
        seen.extend(feats[:, 0].tolist())
    assert Counter(seen) == Counter(data.features[:, 0].tolist())


def test_bad_labels_and_config_are_refused(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("objectId,label\nZTF1,2\n")
    with pytest.raises(InputError, match="0 or 1"):
        build_dataset([tmp_path], tmp_path / "labels.csv", tmp_path / "ds")
    (tmp_path / "labels.csv").write_text("objectId,klass\nZTF1,1\n")
    with pytest.raises(InputError, match="label"):
        build_dataset([tmp_path], tmp_path / "labels.csv", tmp_path / "ds")
    with pytest.raises(ConfigError):
        BuildConfig(fractions=(0.9, 0.9, 0.1))
    with pytest.raises(ConfigError):
        BuildConfig(feature_set="v7")
    with pytest.raises(ConfigError, match="stratify"):
        BuildConfig(stratify="magnitude")


def test_the_split_is_stratified_by_label_and_class(built: tuple[Path, dict, Path]) -> None:
    from brightscan.dataset import split_by_source
    from brightscan.dataset.build import read_labels
    from brightscan.preprocess.history import History

    ds, card, inputs = built
    labels, classes = read_labels(ds.parent / "labels.csv")
    seen = History.collect([str(inputs)]).objects()
    expected = split_by_source({o: labels[o] for o in seen if o in labels}, (0.6, 0.2, 0.2), seed=3, strata=classes)
    table = pd.concat([t.assign(split=s) for s, t in _tables(ds).items()])
    assert dict(zip(table["objectId"], table["split"])).items() <= expected.items()
    assert card["build"]["stratify"] == "class"
