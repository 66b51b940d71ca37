"""Build the objects an autoscan configuration names: the sink (with its SkyPortal client) and the
policy. The config module only reads and checks settings; network clients are built here, when the
service starts, never at import."""

from __future__ import annotations

from typing import Any

from brightscan.autoscan.config import PolicyConfig, SinkConfig
from brightscan.errors import ConfigError

__all__ = ["build_policy", "build_sink", "build_skyportal_sink"]


def build_sink(config: SinkConfig) -> Any:
    """Build the configured sink (network clients are built here, never at import)."""
    from brightscan.autoscan.sinks import LogSink, WebhookSink

    if config.kind == "log":
        return LogSink(config.path)
    if not config.url:
        raise ConfigError(f"the {config.kind} sink needs a URL (sink.url or BRIGHTSCAN_SKYPORTAL_URL)")
    if config.kind == "webhook":
        return WebhookSink(config.url, timeout=config.timeout_s, retries=config.retries,
                           backoff=config.backoff_s)
    return build_skyportal_sink(config)


def build_skyportal_sink(config: SinkConfig) -> Any:
    """The SkyPortal sink; the follow-up payload is checked against the facility's form here."""
    import datetime as dt

    from brightscan.autoscan.sinks.skyportal.followup import DEFAULT_CONSTRAINTS, FollowupPlan, check_form
    from brightscan.autoscan.sinks import SkyPortalSink
    from brightscan.autoscan.sinks.skyportal.client import SkyPortalClient

    if not config.token:
        raise ConfigError("the skyportal sink needs a token: set BRIGHTSCAN_SKYPORTAL_TOKEN")
    if not config.group_ids:
        raise ConfigError("the skyportal sink needs sink.group_ids")
    if not config.filter_ids:
        raise ConfigError("the skyportal sink needs sink.filter_ids (the SkyPortal filter(s) the "
                          "candidate is posted for: POST /api/candidates requires one)")
    plan = None
    if config.allocation_id is not None:
        plan = FollowupPlan(
            allocation_id=config.allocation_id,
            target_group_ids=tuple(config.group_ids if config.target_group_ids is None
                                   else config.target_group_ids),
            source_group_ids=tuple(config.group_ids if config.source_group_ids is None
                                   else config.source_group_ids),
            priority=config.priority, observation_type=config.observation_type,
            validity_days=config.validity_days, payload=dict(config.payload), facility=config.facility,
            constraints=dict(DEFAULT_CONSTRAINTS if config.constraints is None else config.constraints))
        problems = check_form(plan.facility, plan.request_payload(dt.datetime.now(dt.timezone.utc)))
        if problems:
            raise ConfigError(f"[sink] follow-up payload does not fit the {plan.facility or 'request'} "
                              "form: " + "; ".join(problems))
    client = SkyPortalClient(config.url, config.token, timeout=config.timeout_s,
                             retries=config.retries, backoff=config.backoff_s,
                             rate=config.rate_limit, burst=config.rate_burst)
    return SkyPortalSink(client, group_ids=config.group_ids, filter_ids=config.filter_ids,
                         followup=plan, annotation_origin=config.annotation_origin,
                         instrument_id=config.instrument_id, stream_ids=config.stream_ids,
                         followup_timeout=config.followup_timeout_s)


def build_policy(config: PolicyConfig) -> Any:
    """Build the policy object (``brightscan.policy``) the config names."""
    from brightscan import policy as policy_mod

    if config.stored is not None:
        return policy_mod.policy_from_dict(config.stored)
    return policy_mod.create_policy(config.name, **config.params)
