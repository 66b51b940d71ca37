"""A small synthetic dataset directory in the on-disk format, learnable in a few epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brightscan.dataset.build import table_schema
from brightscan.dataset.card import write_card
from brightscan.preprocess import feature_names
from brightscan.storage import NpyAppender, ParquetRowWriter


def write_synthetic_dataset(root: Path, sizes: dict[str, int], *, seed: int = 0, per_source: int = 8) -> Path:
    """Positives carry a bright centred blob in the difference image and a brighter magpsf."""
    rng = np.random.default_rng(seed)
    names = feature_names("v1")
    yy, xx = np.mgrid[:63, :63]
    blob = np.exp(-((yy - 31) ** 2 + (xx - 31) ** 2) / 8.0).astype(np.float32)
    splits = {}
    for split, n in sizes.items():
        (root / split).mkdir(parents=True)
        labels = (np.arange(n) // per_source) % 2
        with (NpyAppender(root / split / "triplets.npy", (63, 63, 3)) as npy,
              ParquetRowWriter(root / split / "alerts.parquet", table_schema("v1")) as table):
            for i in range(n):
                trip = rng.normal(0, 1, (63, 63, 3)).astype(np.float32)
                trip[..., 2] += 4 * labels[i] * blob
                trip /= np.linalg.norm(trip, axis=(0, 1), keepdims=True)
                npy.append(trip)
                feats = rng.normal(0, 1, len(names)).astype(np.float32)
                row = {"candid": 10_000 * seed + i, "objectId": f"{split}{i // per_source:05d}",
                       "jd": 2460000.0 + i % per_source, "magpsf": float(18 - labels[i] + rng.normal(0, 0.5)),
                       "fid": 1, "label": int(labels[i]), "class": ""}
                row.update({k: float(v) for k, v in zip(names, feats) if k not in row})
                table.write(row)
        splits[split] = {"alerts": n}
    write_card(root, {"kind": "synthetic", "feature_set": "v1", "features": list(names), "nmax": None,
                      "seed": seed, "inputs": [], "splits": splits, "skipped": {}})
    return root


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    return write_synthetic_dataset(root, {"train": 192, "val": 64, "test": 16})

