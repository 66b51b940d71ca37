"""``python tests/autoscan/wired_autoscan.py ARGS`` = ``brightscan ARGS``, with save actions
carrying the alert's light curve and cutouts.

The SkyPortal sink posts photometry and thumbnails from ``photometry`` and ``cutouts`` in a save
action's payload (:func:`brightscan.autoscan.alert_payload.save_extras`). ``service.py`` is being
refactored elsewhere and does not enqueue them yet; until it does, this launcher adds them where
the service enqueues a save, so the SIGKILL test and the benchmark exercise the whole save
(candidate, photometry, thumbnails, source). A payload that already has ``photometry`` is left
alone, so once ``service.py`` enqueues the extras this launcher changes nothing and can go.
"""

from __future__ import annotations

from typing import Any

from brightscan.autoscan import outbox, service
from brightscan.autoscan.alert_payload import save_extras
from brightscan.cli.main import main

_identify = service.AutoscanService._identify
_enqueue = outbox.enqueue
_deciding: dict[str, Any] = {}  # the alert whose decision is being enqueued (one thread)


def _identify_keeping_the_alert(self, conn, object_id, p, batch, now):  # noqa: ANN001
    _deciding["alert"] = p["alert"]
    try:
        return _identify(self, conn, object_id, p, batch, now)
    finally:
        _deciding.clear()


def _enqueue_with_extras(conn, kind, object_id, payload, **kwargs):  # noqa: ANN001
    alert = _deciding.get("alert")
    if kind == "save" and alert is not None and "photometry" not in payload:
        payload = {**payload, **save_extras(alert)}
    return _enqueue(conn, kind, object_id, payload, **kwargs)


service.AutoscanService._identify = _identify_keeping_the_alert
outbox.enqueue = _enqueue_with_extras

if __name__ == "__main__":
    main()
