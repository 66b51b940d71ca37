"""The dispatcher thread survives a database that is busy for a moment and stops on anything else."""

from __future__ import annotations

import sqlite3
import time

import pytest
import sqlalchemy as sa

from brightscan.autoscan.write.dispatcher import DispatcherThread
from brightscan.autoscan.write.outbox import DispatchStats


def _locked() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))


def test_a_busy_database_is_retried_not_fatal(caplog):
    calls = []

    def dispatch(_preempt):
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise _locked()
        return DispatchStats()

    with DispatcherThread(dispatch, lambda: None, time.time, idle_s=0.05, max_backoff_s=0.2) as thread:
        deadline = time.monotonic() + 10
        while len(calls) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        thread.raise_if_failed()
    assert len(calls) >= 4  # went on after the two locked passes
    assert calls[1] - calls[0] >= 0.09 and calls[2] - calls[1] >= 0.19  # backed off, doubling
    assert sum("database is locked" in r.getMessage() for r in caplog.records) == 2


def test_anything_else_ends_the_thread_and_reaches_the_owner():
    def dispatch(_preempt):
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        with DispatcherThread(dispatch, lambda: None, time.time, idle_s=0.05):
            time.sleep(0.3)
