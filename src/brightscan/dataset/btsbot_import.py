"""Import a training set in the original BTSbot team's released layout.

The original layout is, per split (``train``, ``val``, ``test``)::

    {split}_cand_{version}_N{N}.csv       # one row per alert: candidate fields, features, label
    {split}_triplets_{version}_N{N}.npy   # (n, 63, 63, 3) triplets, channels last, same row order

Their CSVs name two features differently: ``nnotdet`` is our ``nnondet`` and the production
model reads ``new_drb`` as ``drb`` (the released v1.0.1 model reproduces its published scores only
with ``new_drb``), so ``new_drb`` wins over ``drb`` when both are present.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brightscan.dataset.build import table_schema
from brightscan.dataset.card import write_card
from brightscan.dataset.split import SPLITS
from brightscan.errors import InputError
from brightscan.preprocess import PREPROCESSING_VERSION, STAMP_SIZE, feature_names
from brightscan.storage import NpyAppender, ParquetRowWriter

__all__ = ["import_btsbot", "find_btsbot_files"]

_CSV = re.compile(r"^(train|val|test)_cand_(?P<version>.+)_N(?P<n>\d+)\.csv$")
#: Their column name -> ours.
RENAMES = {"nnotdet": "nnondet"}
_CHUNK = 4096


def find_btsbot_files(directory: str | Path, version: str | None = None) -> dict[str, tuple[Path, Path]]:
    """Map each split present to its (csv, npy) pair; one version/N combination only."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory")
    found: dict[tuple[str, str], dict[str, tuple[Path, Path]]] = {}
    for csv in sorted(directory.glob("*_cand_*_N*.csv")):
        match = _CSV.match(csv.name)
        if not match or (version is not None and match["version"] != version):
            continue
        npy = csv.with_name(f"{match[1]}_triplets_{match['version']}_N{match['n']}.npy")
        if not npy.is_file():
            raise InputError(f"{csv.name} has no matching {npy.name}")
        found.setdefault((match["version"], match["n"]), {})[match[1]] = (csv, npy)
    if not found:
        raise InputError(f"no {{split}}_cand_{{version}}_N{{N}}.csv files in {directory}")
    if len(found) > 1:
        keys = ", ".join(f"{v} (N{n})" for v, n in sorted(found))
        raise InputError(f"{directory} holds several versions ({keys}); choose one with --version")
    return next(iter(found.values()))


def _standardise(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.rename(columns=RENAMES)
    if "new_drb" in frame.columns:
        frame["drb"] = frame["new_drb"]
    return frame


def _pick_feature_set(columns: set[str]) -> str:
    for name in ("v1", "icml2023"):
        if set(feature_names(name)) <= columns:
            return name
    missing = sorted(set(feature_names("icml2023")) - columns)
    raise InputError(f"the CSV lacks feature column(s) {', '.join(missing)}")


def _rows(frame: pd.DataFrame, names: tuple[str, ...]) -> list[dict[str, Any]]:
    out = pd.DataFrame({
        "candid": pd.to_numeric(frame["candid"]).round().astype("int64"),
        "objectId": frame["objectId"].astype(str),
        "jd": frame["jd"].astype(float),
        "magpsf": frame["magpsf"].astype(float),
        "fid": frame["fid"].astype("int32") if "fid" in frame else None,
        "label": frame["label"].astype("int8"),
        "class": frame["class"].astype(str) if "class" in frame else "",
    })
    for name in names:
        if name not in out.columns:
            out[name] = frame[name].astype("float32")
    return out.to_dict("records")


def import_btsbot(directory: str | Path, out_dir: str | Path, *, version: str | None = None) -> dict[str, Any]:
    """Convert an original-layout training set into a brightscan dataset directory.

    Returns
    -------
    dict
        The dataset card (also written to ``out_dir/dataset.json``). Splits absent from the
        input are written empty.
    """
    files = find_btsbot_files(directory, version)
    frames = {s: _standardise(pd.read_csv(csv, dtype={"objectId": str})) for s, (csv, _) in files.items()}
    feature_set = _pick_feature_set(set.intersection(*(set(f.columns) for f in frames.values())))
    names = feature_names(feature_set)
    out = Path(out_dir)
    splits: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
        frame = frames.get(split)
        triplets = np.load(files[split][1], mmap_mode="r") if split in files else np.empty((0, 63, 63, 3))
        n = 0 if frame is None else len(frame)
        if triplets.shape != (n, STAMP_SIZE, STAMP_SIZE, 3):
            raise InputError(f"{split}: triplets of shape {triplets.shape} for {n} CSV rows")
        with (NpyAppender(out / split / "triplets.npy", (STAMP_SIZE, STAMP_SIZE, 3)) as npy,
              ParquetRowWriter(out / split / "alerts.parquet", table_schema(feature_set)) as table):
            for start in range(0, n, _CHUNK):
                npy.append(np.asarray(triplets[start:start + _CHUNK], dtype=np.float32))
                for row in _rows(frame.iloc[start:start + _CHUNK], names):
                    table.write(row)
        labels = frame["label"] if frame is not None else pd.Series(dtype=int)
        srcs = frame.groupby("objectId")["label"].first() if frame is not None else pd.Series(dtype=int)
        splits[split] = {
            "alerts": n,
            "alerts_per_label": {str(k): int((labels == k).sum()) for k in (0, 1)},
            "sources": int(len(srcs)),
            "sources_per_label": {str(k): int((srcs == k).sum()) for k in (0, 1)},
        }
    first_csv = next(iter(files.values()))[0]
    match = _CSV.match(first_csv.name)
    card = {
        "kind": "imported-btsbot",
        "feature_set": feature_set,
        "features": list(names),
        "preprocessing_version": f"btsbot-original ({PREPROCESSING_VERSION} not applied)",
        "nmax": int(match["n"]),
        "seed": None,
        "inputs": [str(p) for pair in files.values() for p in pair],
        "original_version": match["version"],
        "splits": splits,
        "skipped": {},
    }
    write_card(out, card)
    return card
