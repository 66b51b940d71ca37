"""Evaluation like the paper: per alert (ROC, outcomes by magnitude, calibration) and per source
(policy completeness, purity and identification delay), plus the report writer.

Heavy pieces (plots, the report, which load matplotlib and the model package) are imported from
their modules: ``brightscan.evaluate.report.evaluate``.
"""

from __future__ import annotations
