"""Build the objects an autoscan configuration names: the sink (with its SkyPortal client) and the
policy. The config module only reads and checks settings; network clients are built here, when the
service starts, never at import."""

from __future__ import annotations

from typing import Any

from brightscan.autoscan.config import PolicyConfig, SinkConfig, SkyPortalSinkSettings
from brightscan.autoscan.secrets import require_https
from brightscan.errors import ConfigError

__all__ = ["build_policy", "build_sink", "build_skyportal_sink"]


def build_sink(config: SinkConfig) -> Any:
    """Build the sink ``config.kind`` names from its own section (network clients are built here,
    never at import)."""
    from brightscan.autoscan.sinks import LogSink, WebhookSink

    if config.kind == "log":
        return LogSink(config.log.path)
    if config.kind == "webhook":
        settings = config.webhook
        if not settings.url:
            raise ConfigError("the webhook sink needs a URL ([sink.webhook] url)")
        require_https(settings.url, "[sink.webhook] url")
        return WebhookSink(settings.url, timeout=settings.timeout_s, retries=settings.retries,
                           backoff=settings.backoff_s)
    return build_skyportal_sink(config.skyportal)


def build_skyportal_sink(settings: SkyPortalSinkSettings) -> Any:
    """The SkyPortal sink; its follow-up plan is built (and checked against the facility's form)
    once, here."""
    from brightscan.autoscan.sinks.skyportal import SkyPortalClient, SkyPortalSink
    from brightscan.autoscan.sinks.skyportal.followup import FollowupPlan

    if not settings.url:
        raise ConfigError("the skyportal sink needs a URL ([sink.skyportal] url or BRIGHTSCAN_SKYPORTAL_URL)")
    require_https(settings.url, "[sink.skyportal] url")
    if not settings.token:
        raise ConfigError("the skyportal sink needs a token: set BRIGHTSCAN_SKYPORTAL_TOKEN")
    if not settings.group_ids:
        raise ConfigError("the skyportal sink needs [sink.skyportal] group_ids")
    if not settings.filter_ids:
        raise ConfigError("the skyportal sink needs [sink.skyportal] filter_ids (the SkyPortal filter(s) "
                          "the candidate is posted for: POST /api/candidates requires one)")
    plan = None
    if settings.followup is not None:
        plan = FollowupPlan.from_settings(settings.followup, group_ids=settings.group_ids)
    client = SkyPortalClient(settings.url, settings.token, timeout=settings.timeout_s,
                             retries=settings.retries, backoff=settings.backoff_s,
                             rate=settings.rate_limit, burst=settings.rate_burst)
    return SkyPortalSink(client, group_ids=settings.group_ids, filter_ids=settings.filter_ids,
                         followup=plan, annotation_origin=settings.annotation_origin,
                         instrument_id=settings.instrument_id, stream_ids=settings.stream_ids,
                         followup_timeout=settings.followup_timeout_s)


def build_policy(config: PolicyConfig) -> Any:
    """Build the policy object (``brightscan.policy``) the config names."""
    from brightscan import policy as policy_mod

    if config.stored is not None:
        return policy_mod.policy_from_dict(config.stored)
    return policy_mod.create_policy(config.name, **config.params)
