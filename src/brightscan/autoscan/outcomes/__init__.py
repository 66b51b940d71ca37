"""Outcomes: how autoscan's decisions turned out against later classifications (BTS, TNS, plain CSV)."""

from brightscan.autoscan.outcomes.classifications import read_classifications, read_save_times
from brightscan.autoscan.outcomes.report import OutcomesReport, compute_outcomes
from brightscan.autoscan.outcomes.text import format_report

__all__ = ["OutcomesReport", "compute_outcomes", "format_report", "read_classifications", "read_save_times"]
