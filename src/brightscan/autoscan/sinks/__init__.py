"""Where actions go: the log file, a webhook, or SkyPortal/Fritz (:mod:`.skyportal`).

Each sink implements :class:`brightscan.autoscan.actions.Sink`; the write path knows only that
contract. The SkyPortal token is sent only in the ``Authorization`` header and never appears in a
log message or an exception.
"""

from brightscan.autoscan.sinks.log import LogSink
from brightscan.autoscan.sinks.skyportal import SkyPortalSink
from brightscan.autoscan.sinks.webhook import WebhookSink

__all__ = ["LogSink", "SkyPortalSink", "WebhookSink"]
