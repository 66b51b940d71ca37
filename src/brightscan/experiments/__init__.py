"""Experiments that chain the pipeline's stages at several settings (the learning curve)."""

from __future__ import annotations

from brightscan.experiments.learning_curve import CurveConfig, ProgressHook, curve_rows, run_learning_curve
from brightscan.experiments.stages import PeakMemory, StageRunner

__all__ = ["CurveConfig", "PeakMemory", "ProgressHook", "StageRunner", "curve_rows", "run_learning_curve"]
