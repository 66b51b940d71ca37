"""The SkyPortal (Fritz) sink: the REST client (:mod:`.client`), the follow-up rules
(:mod:`.followup`), the photometry and thumbnail bodies (:mod:`.payloads`) and the sink that
uses them (:mod:`.sink`)."""

from brightscan.autoscan.sinks.skyportal.client import SkyPortalClient, SkyPortalError
from brightscan.autoscan.sinks.skyportal.sink import SkyPortalSink

__all__ = ["SkyPortalClient", "SkyPortalError", "SkyPortalSink"]
