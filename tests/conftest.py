"""Shared fixtures. Real reference data lives in ``../shared`` beside the checkout and is never
copied into the project; tests that need it skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("BRIGHTSCAN_SHARED_DIR", REPO_ROOT.parent / "shared"))


def require_shared(*relative: str) -> Path:
    """Return ``../shared/<relative>``, or skip the calling test when it is absent."""
    path = SHARED_DIR.joinpath(*relative)
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (it lives in ../shared beside the checkout)")
    return path


@pytest.fixture
def shared_dir() -> Path:
    return require_shared()


@pytest.fixture
def real_avro_dir() -> Path:
    return require_shared("data", "real-alerts", "ztf-avro")


@pytest.fixture
def real_parquet_dir() -> Path:
    return require_shared("data", "real-alerts", "fink-parquet")


@pytest.fixture
def btsbot_example_dir() -> Path:
    return require_shared("data", "btsbot-example")


@pytest.fixture
def published_models_dir() -> Path:
    return require_shared("models", "btsbot-published")


# Headless Chromium for the page tests: one browser per session, shared by every test module.
from browser import browser  # noqa: E402,F401
