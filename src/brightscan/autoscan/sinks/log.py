"""The log sink: actions appended to a local JSONL (or CSV) file, once per idempotency key."""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from pathlib import Path

from brightscan.autoscan.actions import ActionRequest

__all__ = ["LogSink"]

log = logging.getLogger(__name__)


def _jsonl_key(line: str) -> str | None:
    """The idempotency key of a JSONL line; None for a line torn by a crash mid-write."""
    try:
        return json.loads(line)["idempotency_key"]
    except (json.JSONDecodeError, KeyError, TypeError):
        if line.strip():
            log.warning("ignoring a torn line in the action log: %.60s", line)
        return None


class LogSink:
    """Append actions to a JSONL file (or CSV when the name ends in ``.csv``), once per key."""

    _FIELDS = ("time", "kind", "objectId", "idempotency_key", "payload")

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._seen: set[str] | None = None

    def _keys(self) -> set[str]:
        if self._seen is None:
            self._seen = set()
            if self.path.exists():
                with open(self.path, newline="", encoding="utf-8") as fh:
                    if self.path.suffix == ".csv":
                        self._seen = {row["idempotency_key"] for row in csv.DictReader(fh)}
                    else:
                        self._seen = {key for line in fh if (key := _jsonl_key(line))}
        return self._seen

    def deliver(self, action: ActionRequest) -> str:
        if action.idempotency_key in self._keys():
            return f"already in {self.path.name}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row = {"time": time.time(), "kind": action.kind, "objectId": action.object_id,
               "idempotency_key": action.idempotency_key, "payload": action.payload}
        new = not self.path.exists() or self.path.stat().st_size == 0
        torn = not new and not self.path.read_bytes().endswith(b"\n")  # killed mid-line before
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            if torn:
                fh.write("\n")
            if self.path.suffix == ".csv":
                writer = csv.DictWriter(fh, fieldnames=self._FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow({**row, "payload": json.dumps(row["payload"])})
            else:
                fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._keys().add(action.idempotency_key)
        return f"written to {self.path.name}"
