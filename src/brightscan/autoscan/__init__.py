"""Real-time autoscan: consume alerts, score, decide with a policy, and act exactly once.

Pieces (one idea per module): :mod:`~brightscan.autoscan.feeds` (where alerts come from),
:mod:`~brightscan.autoscan.store` (the database), :mod:`~brightscan.autoscan.service` (the loop),
:mod:`~brightscan.autoscan.outbox` (delivering actions), :mod:`~brightscan.autoscan.sinks`
(SkyPortal, webhook, log), :mod:`~brightscan.autoscan.config` (TOML settings) and
:mod:`~brightscan.autoscan.summary` (the night's report). See ``docs/autoscan.md``.
"""

from brightscan.autoscan.config import AutoscanConfig, load_config
from brightscan.autoscan.service import AutoscanService, DeliveryResult, load_scorer
from brightscan.autoscan.sinks import ActionRequest, LogSink, SinkError, SkyPortalSink, WebhookSink
from brightscan.autoscan.feeds import Delivery, DirectoryFeed, KafkaFeed, ReplayFeed, parse_feed
from brightscan.autoscan.store import Store, open_store

__all__ = [
    "ActionRequest",
    "AutoscanConfig",
    "AutoscanService",
    "Delivery",
    "DeliveryResult",
    "DirectoryFeed",
    "KafkaFeed",
    "LogSink",
    "ReplayFeed",
    "SinkError",
    "SkyPortalSink",
    "Store",
    "WebhookSink",
    "load_config",
    "load_scorer",
    "open_store",
    "parse_feed",
]
