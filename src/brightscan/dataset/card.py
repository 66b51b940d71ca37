"""The dataset card: a JSON file describing how a dataset was built and what it holds."""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

from brightscan.errors import InputError
from brightscan.storage import read_json_card

__all__ = ["CARD_NAME", "FORMAT", "write_card", "read_dataset_card"]

CARD_NAME = "dataset.json"
FORMAT = "brightscan-dataset"
FORMAT_VERSION = 1


def write_card(directory: str | Path, card: dict[str, Any]) -> Path:
    """Write ``DIR/dataset.json`` atomically, adding format, date and code version."""
    from brightscan import __version__

    path = Path(directory) / CARD_NAME
    full = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **card,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "code_version": f"brightscan {__version__}",
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_dataset_card(directory: str | Path) -> dict[str, Any]:
    """Parse ``DIR/dataset.json``.

    Raises
    ------
    InputError
        When the directory is not a brightscan dataset.
    """
    return read_json_card(directory, CARD_NAME, fmt=FORMAT, version=FORMAT_VERSION, error=InputError,
                          what="brightscan dataset")
