"""Tiny generated inputs for the evaluation tests: a dataset directory and a random model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from brightscan.dataset.card import write_card
from brightscan.model import create_model, save_model

SPLIT_SOURCES = {"val": 24, "test": 20}


def write_tiny_dataset(root: Path, feature_names: tuple[str, ...], seed: int = 0) -> Path:
    """Write DS/{val,test}/triplets.npy + alerts.parquet + dataset.json in the dataset format.

    Half the sources are bright (label 1, peaking at 16-18 mag); the rest are faint (label 0),
    half of them dim supernovae (class SN II), half AGN.
    Each source has 1-6 alerts so the ">= 2 alerts" selection has something to drop.
    """
    rng = np.random.default_rng(seed)
    candid = 1_000_000
    for split, n_sources in SPLIT_SOURCES.items():
        rows = []
        for s in range(n_sources):
            label = s % 2
            n = int(rng.integers(1, 7))
            jd0 = 2460000.5 + rng.uniform(0, 30)
            jd = jd0 + np.sort(rng.uniform(0, 10, n))
            peak = rng.uniform(16, 18) if label else rng.uniform(18.6, 20.5)
            mag = peak + rng.uniform(0, 1.5, n)
            for i in range(n):
                candid += 1
                feats = {name: float(rng.normal()) for name in feature_names}
                feats.update(magpsf=float(mag[i]), peakmag_so_far=float(mag[: i + 1].min()),
                             age=float(jd[i] - jd0), ndethist=float(i + 1))
                rows.append({"candid": candid, "objectId": f"ZTF{split}{s:04d}", "jd": float(jd[i]),
                             "fid": 1 + i % 2, "label": label, "class": "SN Ia" if label else ("SN II" if s % 4 == 0 else "AGN"),
                             **{k: v for k, v in feats.items() if k in feature_names or k == "magpsf"}})
        table = pd.DataFrame(rows)
        out = root / split
        out.mkdir(parents=True)
        table.to_parquet(out / "alerts.parquet", index=False)
        np.save(out / "triplets.npy", rng.normal(size=(len(table), 63, 63, 3)).astype(np.float32))
    write_card(root, {"feature_set": "custom", "features": list(feature_names)})
    return root


def save_random_model(directory: Path, preset: str = "mi_cnn.tiny", seed: int = 0) -> Path:
    """A randomly-initialised model saved through the model package."""
    model = create_model(preset, seed=seed)
    return save_model(model, directory, provenance={"test": "random init"})
