"""A contact sheet of simulated triplets per class (science, reference, difference), for the docs."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from brightscan.simulate.config import CLASSES, SurveyConfig
from brightscan.simulate.observing import make_nights
from brightscan.simulate.packets import simulate_source
from brightscan.simulate.scanners import make_scan_times
from brightscan.simulate.survey import jd_of_date

ROW_TITLES = {"bright_sn": "bright SN", "dim_sn": "dim SN", "agn": "AGN", "cv": "CV", "varstar": "var. star",
              "bogus": "bogus"}


def example_triplets(config: SurveyConfig, per_class: int = 2, max_tries: int = 40) -> dict[str, list[tuple[np.ndarray, ...]]]:
    """Near-peak (science, reference, difference) stamps of ``per_class`` sources per class.

    Sources are simulated in memory with indices beyond ``config.n_sources`` (nothing is written).
    """
    import fastavro
    from astropy.io import fits

    start = jd_of_date(config.start_date)
    nights = make_nights(config.seed, start, config.n_nights)
    scans = make_scan_times(config.seed, start - 30, config.n_nights + 400, config.scanners)
    out: dict[str, list[tuple[np.ndarray, ...]]] = {}
    index = config.n_sources
    for cls in CLASSES:
        found: list[tuple[np.ndarray, ...]] = []
        for _ in range(max_tries):
            if len(found) == per_class:
                break
            index += 1
            packets = simulate_source(index, cls, config, nights, scans).packets
            if not packets:
                continue
            records = [next(iter(fastavro.reader(io.BytesIO(p)))) for _, _, p in packets]
            best = min(records, key=lambda r: r["candidate"]["magpsf"])
            found.append(tuple(
                fits.getdata(io.BytesIO(gzip.decompress(best[name]["stampData"]))).astype(float)
                for name in ("cutoutScience", "cutoutTemplate", "cutoutDifference")
            ))
        out[cls] = found
    return out


def write_preview(path: str | Path, config: SurveyConfig, per_class: int = 2) -> Path:
    """Draw the contact sheet to ``path`` (PNG); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    examples = example_triplets(config, per_class)
    fig, axes = plt.subplots(len(CLASSES), 3 * per_class, figsize=(1.25 * 3 * per_class, 1.3 * len(CLASSES)))
    for r, cls in enumerate(CLASSES):
        for e in range(per_class):
            for c, title in enumerate(("sci", "ref", "diff")):
                ax = axes[r, 3 * e + c]
                ax.set_xticks([])
                ax.set_yticks([])
                if e < len(examples[cls]):
                    ax.imshow(_stretch(examples[cls][e][c]), cmap="gray", vmin=0, vmax=1, origin="lower",
                              interpolation="nearest")
                if r == 0:
                    ax.set_title(title, fontsize=8)
                if c == 0 and e == 0:
                    ax.set_ylabel(ROW_TITLES[cls], fontsize=8)
    fig.suptitle(f"brightscan simulator, seed {config.seed}: brightest alert of each source", fontsize=9)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 0.97))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=80, format="png")
    plt.close(fig)
    from PIL import Image  # ships with matplotlib

    Image.open(buffer).convert("L").save(path, optimize=True)  # grey levels only: a third of the size
    return path


def _stretch(image: np.ndarray) -> np.ndarray:
    """asinh stretch from 2 sigma below the sky to the brightest pixel (noise and cores both visible)."""
    sky = np.median(image)
    sigma = 1.4826 * np.median(np.abs(image - sky)) or 1.0
    scaled = np.arcsinh(np.clip(image - sky + 2 * sigma, 0, None) / (3 * sigma))
    return scaled / max(scaled.max(), 1e-9)
