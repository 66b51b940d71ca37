"""The dispatcher thread: outbox passes run beside ingestion, so a rate-limited delivery never
holds up the next file (and a newly stored save never waits for a file to be scored).

The lease (:func:`brightscan.autoscan.write.outbox.claim`) is what makes this safe: the thread is
one more dispatcher, claiming each action before it delivers it, exactly as another process would.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from brightscan.autoscan.write.outbox import DispatchStats
from brightscan.autoscan.write.quarantine import describe

__all__ = ["DispatcherThread"]

log = logging.getLogger(__name__)


class DispatcherThread:
    """Runs ``dispatch()`` passes in a daemon thread until stopped; woken early by :meth:`wake`.

    Parameters
    ----------
    dispatch : callable
        One delivery pass, ``dispatch(preempt)`` (``AutoscanService.dispatch``): ``preempt()``
        is true once new actions were announced (:meth:`wake`) during the pass.
    next_due : callable
        When the next open action can be attempted (None when none is open).
    clock : callable
        Unix time source (the one the outbox uses).
    idle_s : float
        Longest sleep between passes (new actions also wake the thread at once).
    stop_timeout_s : float
        How long :meth:`stop` waits for a delivery in progress to be recorded.

    A database that is busy or unreachable for a moment (``OperationalError``: SQLite locked by
    the ingesting thread past its busy timeout, a dropped PostgreSQL connection) is logged and the
    pass retried after a back-off of up to ``max_backoff_s``: the ingesting thread meets the same
    database and stops the service itself if the fault lasts. Anything else raised in the thread
    (a bug, an interrupt) ends it; the owner sees it again from :meth:`raise_if_failed` or when the
    ``with`` block ends.
    """

    def __init__(self, dispatch: Callable[[Callable[[], bool]], DispatchStats], next_due: Callable[[], float | None],
                 clock: Callable[[], float], *, idle_s: float = 1.0, stop_timeout_s: float = 30.0,
                 max_backoff_s: float = 30.0):
        self._dispatch, self._next_due, self._clock = dispatch, next_due, clock
        self.idle_s, self.stop_timeout_s, self.max_backoff_s = idle_s, stop_timeout_s, max_backoff_s
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="autoscan-dispatcher", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        from sqlalchemy.exc import OperationalError

        backoff = 0.0
        try:
            while not self._stop.is_set():
                self._wake.clear()  # a wake during the pass makes another pass
                try:
                    stats = self._dispatch(self._wake.is_set)
                    pause = self._pause(stats)
                    backoff = 0.0
                except OperationalError as exc:  # busy or briefly unreachable: not a reason to stop
                    backoff = min(self.max_backoff_s, max(0.1, 2 * backoff))
                    log.warning("dispatcher: the database answered %s; next pass in %.1f s", describe(exc), backoff)
                    self._stop.wait(backoff)
                    continue
                self._wake.wait(pause)
        except BaseException as exc:  # noqa: BLE001 - handed to the owner thread, which re-raises it
            log.exception("the dispatcher thread stopped")
            self.error = exc

    def _pause(self, stats: DispatchStats) -> float:
        due = self._next_due()
        pause = self.idle_s if due is None else min(self.idle_s, max(0.0, due - self._clock()))
        if not (stats.done or stats.retry or stats.failed):
            # nothing was deliverable (another dispatcher holds the due actions): do not spin
            pause = max(pause, min(self.idle_s, 0.05))
        return pause

    def wake(self) -> None:
        """Start a pass now (new actions were enqueued)."""
        self._wake.set()

    def raise_if_failed(self) -> None:
        """Re-raise, in the calling thread, what ended the dispatcher thread."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def stop(self) -> None:
        """Ask the thread to end after its current delivery, and wait for it."""
        self._stop.set()
        self._wake.set()
        self._thread.join(self.stop_timeout_s)
        if self._thread.is_alive():
            log.warning("the dispatcher thread is still delivering after %.0f s; leaving it (its lease "
                        "expires and the next run checks before sending)", self.stop_timeout_s)

    def __enter__(self) -> DispatcherThread:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop()
        if exc_type is None:
            self.raise_if_failed()
