"""Run a simulated survey: sources in parallel chunks, packets streamed to per-night folders.

Layout written under ``out_dir``::

    alerts/YYYYMMDD/<candid>.avro      one Avro container per alert (like ZTF's archive members)
    alerts/ztf_public_YYYYMMDD.tar.gz  instead, with ``SurveyConfig.tarball``
    labels.csv                         one row per source
    scanner_saves.csv                  objectId, save_jd (empty when the scanners never save it)
    bts_explorer.csv                   later classifications, as the BTS sample explorer writes them

Memory does not grow with the number of sources: workers receive chunks of source indices, write
their packets straight to disk and send back only the three CSV rows per source, which the parent
writes in source order (so the CSVs are identical whatever the number of workers).
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from brightscan.errors import InputError
from brightscan.simulate.classifications import BTS_COLUMNS, ClassificationConfig, bts_row
from brightscan.simulate.config import CLASSES, SurveyConfig, SurveyResult
from brightscan.simulate.observing import NIGHT_MARGIN, Nights, make_nights
from brightscan.simulate.packets import PARAM_COLUMNS, SourceOutput, simulate_source, source_rng
from brightscan.simulate.scanners import make_scan_times
from brightscan.times import JD_UNIX_EPOCH

log = logging.getLogger(__name__)


def jd_of_date(day: date) -> float:
    """JD at 0h UT of a calendar date."""
    return JD_UNIX_EPOCH + (day - date(1970, 1, 1)).days


def assign_classes(config: SurveyConfig) -> np.ndarray:
    """Class index of every source: exact proportions (largest remainder), shuffled by the seed."""
    fractions = np.array(config.class_mix.fractions())
    raw = fractions * config.n_sources
    counts = np.floor(raw).astype(int)
    counts[np.argsort(-(raw - counts), kind="stable")[: config.n_sources - counts.sum()]] += 1
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(2**31 - 3,)))
    return rng.permutation(np.repeat(np.arange(len(CLASSES)), counts))


class _Worker:
    """Simulates chunks of sources and writes their packets (one instance per process)."""

    def __init__(self, config: SurveyConfig, nights: Nights, scans: np.ndarray, alerts_dir: Path, night_names: list[str]):
        self.config, self.nights, self.scans = config, nights, scans
        self.alerts_dir, self.night_names = alerts_dir, night_names
        self.made: set[str] = set()
        self.classifications = ClassificationConfig()
        # when the classification file is taken: as_of_days after the end of the last night
        self.as_of_jd = nights.jd0 + NIGHT_MARGIN + config.n_nights + self.classifications.as_of_days

    def __call__(self, chunk: list[tuple[int, int]]) -> list[tuple[dict, float | None, int, dict | None]]:
        out = []
        for index, cls in chunk:
            result: SourceOutput = simulate_source(index, CLASSES[cls], self.config, self.nights, self.scans)
            for night, candid, payload in result.packets:
                name = self.night_names[night - NIGHT_MARGIN]
                folder = self.alerts_dir / name
                if name not in self.made:
                    folder.mkdir(parents=True, exist_ok=True)
                    self.made.add(name)
                (folder / f"{candid}.avro").write_bytes(payload)
            # the classification's own random stream (2), so the packets and labels do not change
            bts = bts_row(CLASSES[cls], result.label_row, result.save_jd, result.peak,
                          self.as_of_jd, source_rng(self.config.seed, index, 2), self.classifications)
            out.append((result.label_row, result.save_jd, len(result.packets), bts))
        return out


_WORKER: _Worker | None = None


def _init_worker(worker: _Worker) -> None:
    global _WORKER
    _WORKER = worker


def _run_chunk(chunk: list[tuple[int, int]]) -> list[tuple[dict, float | None, int, dict | None]]:
    assert _WORKER is not None  # set by the pool initializer
    return _WORKER(chunk)


def _chunks(classes: np.ndarray, size: int) -> Iterator[list[tuple[int, int]]]:
    for start in range(0, len(classes), size):
        yield [(i, int(classes[i])) for i in range(start, min(start + size, len(classes)))]


def simulate_survey(
    config: SurveyConfig, out_dir: str | Path, progress: Callable[[int], None] | None = None,
) -> SurveyResult:
    """Simulate a survey and write alerts, labels and scanner saves under ``out_dir``.

    Parameters
    ----------
    config : SurveyConfig
        What to simulate; validated here.
    out_dir : path
        Output folder; created if needed. It must not already hold an ``alerts`` folder.
    progress : callable, optional
        Called with the number of sources finished since the last call.

    Returns
    -------
    SurveyResult
        Counts and timing of the run.

    Raises
    ------
    InputError
        If ``out_dir`` already contains simulated alerts.
    ConfigError
        If the configuration is invalid.
    """
    config.validate()
    t0 = time.perf_counter()
    out = Path(out_dir)
    alerts_dir = out / "alerts"
    if alerts_dir.exists() and any(alerts_dir.iterdir()):
        raise InputError(f"{alerts_dir} already holds alerts; choose an empty output folder")
    alerts_dir.mkdir(parents=True, exist_ok=True)
    start_jd = jd_of_date(config.start_date)
    nights = make_nights(config.seed, start_jd, config.n_nights)
    scans = make_scan_times(config.seed, start_jd - 30, config.n_nights + 400, config.scanners)
    names = [(config.start_date + timedelta(days=k)).strftime("%Y%m%d") for k in range(config.n_nights)]
    worker = _Worker(config, nights, scans, alerts_dir, names)
    counts = _run_and_write_tables(worker, assign_classes(config), out, progress)
    if config.tarball:
        pack_nights(alerts_dir)
    seconds = time.perf_counter() - t0
    log.info("simulated %d sources, %d alerts in %.1f s", config.n_sources, counts["alerts"], seconds)
    return SurveyResult(out, config.n_sources, counts["alerts"], counts["positive"], counts["saved"], seconds)


def _run_and_write_tables(
    worker: _Worker, classes: np.ndarray, out: Path, progress: Callable[[int], None] | None,
) -> dict[str, int]:
    """Simulate every source through the pool; write labels.csv, scanner_saves.csv and
    bts_explorer.csv in source order."""
    config = worker.config
    counts = {"alerts": 0, "positive": 0, "saved": 0}
    with open(out / "labels.csv", "w", newline="") as lf, open(out / "scanner_saves.csv", "w", newline="") as sf, \
            open(out / "bts_explorer.csv", "w", newline="") as bf:
        explorer = csv.DictWriter(bf, fieldnames=list(BTS_COLUMNS))
        explorer.writeheader()
        labels = csv.DictWriter(lf, fieldnames=["objectId", "label", "class", "peak_mag", "label_observed",
                                                 "label_true_peak", *PARAM_COLUMNS])
        saves = csv.writer(sf)
        labels.writeheader()
        saves.writerow(["objectId", "save_jd"])
        for results in _map_chunks(worker, _chunks(classes, config.chunk_size), config.n_workers):
            for row, save_jd, n_alerts, bts in results:
                labels.writerow(row)
                if bts is not None:
                    explorer.writerow(bts)
                saves.writerow([row["objectId"], "" if save_jd is None else f"{save_jd:.6f}"])
                counts["alerts"] += n_alerts
                counts["positive"] += row["label"]
                counts["saved"] += save_jd is not None
            if progress is not None:
                progress(len(results))
    return counts


def _map_chunks(worker: _Worker, chunks: Iterator[list[tuple[int, int]]], n_workers: int):
    if n_workers == 1:
        yield from map(worker, chunks)
        return
    # Not "fork": a caller with threads (torch's pool, a Dask client, a browser driver) can hold a
    # lock at the moment of the fork, and the child then waits on it for ever; this hung a CI run.
    # The fork server is a fresh interpreter started once, so its children inherit no threads.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with context.Pool(n_workers, initializer=_init_worker, initargs=(worker,)) as pool:
        yield from pool.imap(_run_chunk, chunks)


def pack_nights(alerts_dir: Path, level: int = 1) -> list[Path]:
    """Replace each night folder by ``ztf_public_YYYYMMDD.tar.gz`` (members sorted, mtime 0)."""
    from isal import igzip

    written = []
    for folder in sorted(p for p in alerts_dir.iterdir() if p.is_dir()):
        target = alerts_dir / f"ztf_public_{folder.name}.tar.gz"
        with igzip.IGzipFile(target, "wb", compresslevel=level, mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            for member in sorted(folder.iterdir()):
                info = tar.gettarinfo(str(member), arcname=member.name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(member, "rb") as fh:
                    tar.addfile(info, fh)
        shutil.rmtree(folder)
        written.append(target)
    return written
