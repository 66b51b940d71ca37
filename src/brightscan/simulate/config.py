"""Typed settings of the simulated survey: class mix, survey window, scanner model.

Every field carries a one-line comment saying what it controls; the defaults reproduce the
proportions of the BTS training set described in the paper (about a third of sources positive).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from brightscan.errors import ConfigError

#: Source classes, in the order used for class indices everywhere in the simulator.
CLASSES: tuple[str, ...] = ("bright_sn", "dim_sn", "agn", "cv", "varstar", "bogus")

#: Magnitude that separates bright from dim SNe (BTS threshold, peak in g or r).
BRIGHT_LIMIT = 18.5

#: Where ``labels.csv``'s ``label`` comes from: "observed" -- a supernova with an alert brighter
#: than :data:`BRIGHT_LIMIT`, as BTS labels come from the observed light curve (BTSbot's
#: ``label="compute"``) -- or "true_peak", the simulator's noiseless peak magnitude.
LABEL_SOURCES = ("observed", "true_peak")


@dataclass(frozen=True)
class ClassMix:
    """Fractions of sources per class; normalised to sum to one when used."""

    bright_sn: float = 0.33  # SNe Ia/II/Ib/c with peak < 18.5 mag (the positive class)
    dim_sn: float = 0.30  # SNe peaking fainter than 18.5 mag
    agn: float = 0.16  # nuclear variability at a galaxy centre, long histories
    cv: float = 0.13  # dwarf-nova outbursts in crowded stellar fields
    varstar: float = 0.04  # periodic variable stars present in the reference image
    bogus: float = 0.04  # artefacts: cosmic rays, bright-star subtraction residuals

    def fractions(self) -> tuple[float, ...]:
        """Normalised fractions in :data:`CLASSES` order.

        Raises
        ------
        ConfigError
            If a fraction is negative or all are zero.
        """
        raw = tuple(getattr(self, name) for name in CLASSES)
        if any(x < 0 for x in raw) or sum(raw) <= 0:
            raise ConfigError(f"class mix needs non-negative fractions with a positive sum: {raw}")
        total = sum(raw)
        return tuple(x / total for x in raw)

    @classmethod
    def parse(cls, text: str) -> ClassMix:
        """Build from ``"bright_sn=0.3,agn=0.2"``; classes not named keep their default.

        Raises
        ------
        ConfigError
            On an unknown class name or a value that is not a number.
        """
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep or name not in CLASSES:
                raise ConfigError(f"bad class-mix item {item!r}; expected NAME=FRACTION with NAME in {CLASSES}")
            try:
                values[name] = float(value)
            except ValueError:
                raise ConfigError(f"class-mix fraction for {name} is not a number: {value!r}") from None
        return dataclasses.replace(cls(), **values)


@dataclass(frozen=True)
class ScannerConfig:
    """Simulated BTS human scanners (see docs/simulator.md for the model)."""

    scan_hours_utc: tuple[float, ...] = (17.0, 23.0)  # times of day the team scans (UT hours)
    second_scan_prob: float = 0.6  # chance the second daily scan happens at all
    save_mag: float = 19.0  # detections must be brighter than this to count
    n_bright_dets: int = 2  # ... and this many of them before a save
    miss_prob: float = 0.03  # chance an eligible bright SN is never saved (with ineligible ones: ~95% complete)
    hesitate_prob: float = 0.3  # chance an eligible source is left for the next scan
    false_save_prob: dict[str, float] = field(  # chance an eligible non-bright source is saved
        default_factory=lambda: {"dim_sn": 0.35, "agn": 0.05, "cv": 0.06, "varstar": 0.01, "bogus": 0.0}
    )


@dataclass(frozen=True)
class SurveyConfig:
    """A simulated ZTF public survey written as alert packets."""

    n_sources: int = 1000  # number of sources simulated
    seed: int = 0  # master seed; every source derives its own stream from it
    start_date: date = date(2023, 3, 1)  # first night of the survey (UT date)
    n_nights: int = 365  # length of the survey in nights
    class_mix: ClassMix = field(default_factory=ClassMix)  # source-class proportions
    scanners: ScannerConfig = field(default_factory=ScannerConfig)  # human-scanner model
    history_days: float = 30.0  # span of prv_candidates before each alert (ZTF: 30 days)
    stamp_size: int = 63  # cutout side in pixels
    edge_stamp_prob: float = 0.01  # chance a source sits near a CCD edge (smaller stamps)
    tarball: bool = False  # one .tar.gz per night instead of a folder per night
    n_workers: int = 2  # processes generating sources in parallel
    chunk_size: int = 20  # sources per work unit (bounds memory per worker)
    gzip_level: int = 1  # compression level of cutouts (1 is fastest; ZTF uses ~6)
    label_from: str = "observed"  # labels.csv "label": "observed" light curve or "true_peak" (both kept)

    def validate(self) -> SurveyConfig:
        """Return ``self`` after checking ranges.

        Raises
        ------
        ConfigError
            On a value out of range.
        """
        if self.n_sources < 1:
            raise ConfigError(f"n_sources must be >= 1, got {self.n_sources}")
        if self.n_nights < 1:
            raise ConfigError(f"n_nights must be >= 1, got {self.n_nights}")
        if self.n_workers < 1 or self.chunk_size < 1:
            raise ConfigError("n_workers and chunk_size must be >= 1")
        if self.stamp_size < 15 or self.stamp_size % 2 == 0:
            raise ConfigError(f"stamp_size must be odd and >= 15, got {self.stamp_size}")
        if self.label_from not in LABEL_SOURCES:
            raise ConfigError(f"label_from must be one of {LABEL_SOURCES}, got {self.label_from!r}")
        if not 0 <= self.gzip_level <= 9:
            raise ConfigError(f"gzip_level must be within 0..9, got {self.gzip_level}")
        self.class_mix.fractions()
        return self


@dataclass(frozen=True)
class SurveyResult:
    """What :func:`~brightscan.simulate.survey.simulate_survey` wrote."""

    out_dir: Path  # the output folder
    n_sources: int  # sources simulated
    n_alerts: int  # alert packets written
    n_positive_sources: int  # sources with label 1
    n_saved: int  # sources the simulated scanners saved
    seconds: float  # wall-clock time of the run
