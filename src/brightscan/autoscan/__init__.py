"""Real-time autoscan: consume alerts, score, decide with a policy, and act exactly once.

Its parts, one sub-package each (see ``docs/autoscan.md``):

* :mod:`~brightscan.autoscan.actions`: the actions contract (``ActionRequest``, ``Sink``,
  ``SinkError``) — all that the write path knows of where actions go;
* :mod:`~brightscan.autoscan.write`: feeds, the service loop, the transactional outbox and the
  runner the CLI calls;
* :mod:`~brightscan.autoscan.store`: the database both halves share;
* :mod:`~brightscan.autoscan.sinks`: the log file, the webhook, and SkyPortal (client, follow-up,
  payloads);
* :mod:`~brightscan.autoscan.pages`: the read-only night page, status page and JSON views;
* :mod:`~brightscan.autoscan.config` (TOML settings) and :mod:`~brightscan.autoscan.build` (sink
  and policy built from them).

The names below are loaded on first use, so importing one part (the outbox, say) never loads
another (the SkyPortal client).
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "ActionRequest": "actions", "SinkError": "actions",
    "AutoscanConfig": "config", "load_config": "config",
    "AutoscanService": "write.service", "DeliveryResult": "write.service", "load_scorer": "write.service",
    "Delivery": "write.feeds", "DirectoryFeed": "write.feeds", "KafkaFeed": "write.feeds",
    "ReplayFeed": "write.feeds", "parse_feed": "write.feeds",
    "LogSink": "sinks", "SkyPortalSink": "sinks", "WebhookSink": "sinks",
    "Store": "store", "open_store": "store",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
