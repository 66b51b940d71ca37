"""Every module imports on its own, without optional extras being imported at module level."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import pytest

import brightscan

MODULES = sorted(m.name for m in pkgutil.walk_packages(brightscan.__path__, "brightscan."))


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_core_does_not_drag_in_training_or_extras() -> None:
    """Importing the reading/preprocessing code must not import optional heavy packages."""
    code = (
        "import sys, brightscan.alerts, brightscan.preprocess; "
        "bad = [m for m in ('optuna', 'onnxruntime', 'confluent_kafka', 'psycopg', 'torch') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at module level: {out.stdout.strip()}"
