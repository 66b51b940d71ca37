"""The built-in simulated ZTF survey: realistic alert packets with labels, for training and tests.

Typical use::

    from brightscan.simulate import SurveyConfig, simulate_survey

    result = simulate_survey(SurveyConfig(n_sources=500, seed=1), "data/sim")
    # data/sim/alerts/YYYYMMDD/<candid>.avro, data/sim/labels.csv, data/sim/scanner_saves.csv

See ``docs/simulator.md`` for the physical model, the scanner model and the realism figures.
"""

from __future__ import annotations

from brightscan.simulate.config import BRIGHT_LIMIT, CLASSES, ClassMix, ScannerConfig, SurveyConfig, SurveyResult
from brightscan.simulate.preview import write_preview
from brightscan.simulate.schema import alert_schema
from brightscan.simulate.survey import simulate_survey

__all__ = [
    "BRIGHT_LIMIT",
    "CLASSES",
    "ClassMix",
    "ScannerConfig",
    "SurveyConfig",
    "SurveyResult",
    "alert_schema",
    "simulate_survey",
    "write_preview",
]
