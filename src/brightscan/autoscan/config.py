"""Autoscan settings: typed dataclasses, read from a TOML file only at the edges (the CLI).

Example (every key optional except what the chosen sink needs)::

    [database]
    url = "sqlite:///autoscan.db"

    [policy]
    name = "bts_prod"          # any brightscan.policy name; other keys are its parameters
    threshold = 0.85

    [service]
    actions = ["save", "followup", "annotation"]
    max_attempts = 8

    [sink]
    kind = "skyportal"         # skyportal | webhook | log: which of the sections below is used

    [sink.skyportal]
    url = "https://fritz.science"   # or BRIGHTSCAN_SKYPORTAL_URL
    group_ids = [1234]
    filter_ids = [567]

    [sink.skyportal.followup]  # a FollowupPlan: leave it out for no follow-up requests
    allocation_id = 56
    facility = "SEDM"
    priority = 5
    observation_type = "IFU"

    [sink.webhook]
    url = "https://example.org/hook"

    [sink.log]
    path = "autoscan-actions.jsonl"

Each sink reads only its own section, and each default is written once: here for the sinks'
settings, in :class:`~brightscan.autoscan.sinks.skyportal.followup.FollowupPlan` for a follow-up
request's. A config written before sections (SkyPortal, webhook and log keys flat under
``[sink]``) is still read, with a :class:`ConfigDeprecationWarning` that says how to rewrite it.

The SkyPortal token comes from ``BRIGHTSCAN_SKYPORTAL_TOKEN`` (or ``sink.skyportal.token``,
discouraged).
"""

from __future__ import annotations

import os
import tomllib
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from brightscan.autoscan.secrets import find_token, validate_token
from brightscan.errors import BrightscanWarning, ConfigError

__all__ = ["AutoscanConfig", "ConfigDeprecationWarning", "DriftConfig", "HttpSinkSettings", "LogSinkSettings", "PolicyConfig",
           "ServiceConfig", "SinkConfig", "SkyPortalSinkSettings", "WebhookSinkSettings", "load_config"]

ACTION_KINDS = ("save", "followup", "annotation")


@dataclass
class PolicyConfig:
    """Which object-level policy decides."""

    name: str = "gt1"  # brightscan.policy name (gt1, gt2, bts_prod, ...)
    params: dict[str, Any] = field(default_factory=dict)  # overrides, e.g. {"threshold": 0.7}
    stored: dict[str, Any] | None = None  # a fitted policy's to_dict(); wins over name/params


class ConfigDeprecationWarning(BrightscanWarning):
    """A config file uses a layout that still works but will not always."""


#: Default annotation origin: names brightscan and the model that scored (``{model_id}``,
#: ``{model_version}`` are filled from the action).
DEFAULT_ORIGIN = "brightscan:{model_id}:{model_version}"
SINK_KINDS = ("skyportal", "webhook", "log")


@dataclass
class LogSinkSettings:
    """``[sink.log]``: actions appended to a local file."""

    path: str = "autoscan-actions.jsonl"  # .jsonl or .csv


@dataclass
class HttpSinkSettings:
    """What every sink that speaks HTTP needs."""

    url: str | None = None  # where requests go
    timeout_s: float = 10.0  # per HTTP request
    retries: int = 3  # re-tries of idempotent requests on 5xx / timeouts
    backoff_s: float = 0.5  # first retry delay, doubling


@dataclass
class WebhookSinkSettings(HttpSinkSettings):
    """``[sink.webhook]``: each action POSTed as JSON."""


@dataclass
class SkyPortalSinkSettings(HttpSinkSettings):
    """``[sink.skyportal]``: SkyPortal / Fritz (the keys are described in ``docs/autoscan.md``)."""

    token: str | None = field(default=None, repr=False)  # prefer env BRIGHTSCAN_SKYPORTAL_TOKEN
    group_ids: list[int] = field(default_factory=list)  # groups to save to and annotate for
    filter_ids: list[int] = field(default_factory=list)  # SkyPortal filters candidates are posted for
    instrument_id: int | None = None  # SkyPortal id of ZTF (None: looked up by name)
    stream_ids: list[int] = field(default_factory=list)  # photometry streams (optional)
    annotation_origin: str = DEFAULT_ORIGIN  # origin of the score annotation
    followup_timeout_s: float = 35.0  # the follow-up POST (SkyPortal calls the facility: SEDM 30 s)
    rate_limit: float = 5.0  # requests per second to SkyPortal (0: no limit)
    rate_burst: int = 10  # requests allowed in a burst
    # [sink.skyportal.followup]: FollowupPlan's keys (None: no follow-up requests); its target and
    # source groups default to group_ids
    followup: dict[str, Any] | None = None


@dataclass
class SinkConfig:
    """Where actions go: ``kind`` picks one section; each sink reads only its own."""

    kind: str = "log"  # skyportal | webhook | log
    log: LogSinkSettings = field(default_factory=LogSinkSettings)
    webhook: WebhookSinkSettings = field(default_factory=WebhookSinkSettings)
    skyportal: SkyPortalSinkSettings = field(default_factory=SkyPortalSinkSettings)

    def __post_init__(self) -> None:
        if self.kind not in SINK_KINDS:
            raise ConfigError(f"unknown sink {self.kind!r} (skyportal, webhook or log)")


@dataclass
class ServiceConfig:
    """How the service loop behaves."""

    actions: list[str] = field(default_factory=lambda: list(ACTION_KINDS))  # enqueued on first pass
    max_attempts: int = 8  # outbox attempts before an action is marked failed
    retry_base_s: float = 2.0  # outbox retry delay after a failed attempt, doubling
    retry_max_s: float = 300.0  # cap of that delay
    poll_interval_s: float = 1.0  # directory polling period
    speedup: float = 10.0  # replay speed-up
    drain_timeout_s: float = 600.0  # at the end of a finite feed, wait this long for the outbox
    overflow: str = "reject"  # cutout overflow handling (see brightscan.preprocess)
    chunk_size: int = 500  # most alerts per transaction (a big file is split into chunks)
    dispatch_budget_s: float = 10.0  # longest delivery pass between two chunks
    dispatch_thread: bool = True  # deliver actions in a thread of their own while ingesting goes on
    lease_s: float = 60.0  # a dispatcher's claim on an action (renewed while delivering); a dead one's is taken over after it

    def __post_init__(self) -> None:
        if not self.lease_s > 0:
            raise ConfigError(f"[service] lease_s must be > 0 seconds, not {self.lease_s!r}")


@dataclass
class DriftConfig:
    """``[drift]``: how a night's inputs are compared with the model's reference (docs/autoscan.md)."""

    reference: str | None = None  # model directory (or reference.json) holding the reference; None: no drift check
    psi_max: float = 0.2  # PSI above this flags a column (0.1-0.25 is the usual "moderate shift" band)
    ks_max: float = 0.1  # KS above this flags a column (noise: 95% level 1.36/sqrt(n) = 0.043 at 1,000 alerts)
    min_alerts: int = 500  # nights with fewer alerts are not judged (sampling noise would flag them)
    max_alerts: int = 200_000  # a bigger night is read as an even, deterministic sample of this many
    ignore: list[str] = field(default_factory=lambda: ["ra", "dec"])  # the sky observed changes nightly by design
    nights: int = 7  # nights shown on the status page and in /metrics history

    def __post_init__(self) -> None:
        if not (self.psi_max > 0 and 0 < self.ks_max <= 1 and self.min_alerts >= 1 and self.max_alerts >= self.min_alerts
                and self.nights >= 1):
            raise ConfigError("[drift]: psi_max > 0, 0 < ks_max <= 1, 1 <= min_alerts <= max_alerts and nights >= 1")


@dataclass
class AutoscanConfig:
    """Everything ``brightscan autoscan`` needs besides the feed and the model."""

    db_url: str = "sqlite:///autoscan.db"  # SQLAlchemy URL
    policy: PolicyConfig = field(default_factory=PolicyConfig)  # decision rule
    sink: SinkConfig = field(default_factory=SinkConfig)  # action destination
    service: ServiceConfig = field(default_factory=ServiceConfig)  # loop settings
    kafka: dict[str, Any] = field(default_factory=dict)  # confluent_kafka.Consumer settings
    drift: DriftConfig = field(default_factory=DriftConfig)  # the nightly drift check

    def __post_init__(self) -> None:
        bad = [a for a in self.service.actions if a not in ACTION_KINDS]
        if bad:
            raise ConfigError(f"unknown action kind(s) {bad}; choose from {list(ACTION_KINDS)}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"[{where}]: unknown key(s) {sorted(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"[{where}]: {exc}") from None


def config_from_dict(data: dict[str, Any]) -> AutoscanConfig:
    """Build the config from parsed TOML (see the module docstring for the layout)."""
    data = dict(data)
    policy = dict(data.pop("policy", {}))
    stored = policy.pop("stored", None)
    name = policy.pop("name", "gt1")
    db = data.pop("database", {})
    known = {"sink", "service", "kafka", "drift"}
    if set(data) - known:
        raise ConfigError(f"unknown section(s) {sorted(set(data) - known)}")
    return AutoscanConfig(
        db_url=db.get("url", "sqlite:///autoscan.db"),
        policy=PolicyConfig(name=name, params=policy, stored=stored),
        sink=_sink_config(dict(data.get("sink", {}))),
        service=_build(ServiceConfig, dict(data.get("service", {})), "service"),
        kafka=dict(data.get("kafka", {})),
        drift=_build(DriftConfig, dict(data.get("drift", {})), "drift"),
    )


#: Keys of the flat ``[sink]`` of old configs that belong to the follow-up plan.
_FLAT_FOLLOWUP = ("allocation_id", "facility", "priority", "observation_type", "validity_days",
                  "target_group_ids", "source_group_ids", "constraints", "payload")


def _sink_config(data: dict[str, Any]) -> SinkConfig:
    """``[sink]`` with its sections; flat keys (the layout before sections) are moved into them."""
    kind = data.pop("kind", SinkConfig.kind)
    sections = {name: dict(data.pop(name)) for name in SINK_KINDS if isinstance(data.get(name), dict)}
    if data:
        sections = _from_flat(kind, data, sections)
    skyportal = sections.get("skyportal", {})
    followup = skyportal.get("followup")
    if followup is not None and not isinstance(followup, dict):
        raise ConfigError("[sink.skyportal] followup must be a table ([sink.skyportal.followup])")
    return SinkConfig(kind=kind,
                      log=_build(LogSinkSettings, sections.get("log", {}), "sink.log"),
                      webhook=_build(WebhookSinkSettings, sections.get("webhook", {}), "sink.webhook"),
                      skyportal=_build(SkyPortalSinkSettings, skyportal, "sink.skyportal"))


def _from_flat(kind: str, flat: dict[str, Any], sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Sort an old flat ``[sink]`` into sections, warning once how to write it now."""
    log_keys = {f.name for f in fields(LogSinkSettings)}
    http_keys = {f.name for f in fields(HttpSinkSettings)}
    skyportal_keys = {f.name for f in fields(SkyPortalSinkSettings)} | set(_FLAT_FOLLOWUP)
    unknown = set(flat) - log_keys - skyportal_keys
    if unknown:
        raise ConfigError(f"[sink]: unknown key(s) {sorted(unknown)}; settings go in [sink.skyportal], "
                          "[sink.webhook] or [sink.log]")
    moved: dict[str, dict[str, Any]] = {name: dict(sections.get(name, {})) for name in SINK_KINDS}
    targets = set()
    for key, value in flat.items():
        if key in log_keys:
            moved["log"][key] = value
            targets.add("log")
        elif key in _FLAT_FOLLOWUP:
            moved["skyportal"].setdefault("followup", {})[key] = value
            targets.add("skyportal.followup")
        else:
            moved["skyportal"][key] = value
            targets.add("webhook" if kind == "webhook" else "skyportal")
            if key in http_keys:  # url, timeouts and retries meant whichever HTTP sink was chosen
                moved["webhook"][key] = value
    warnings.warn(f"[sink]: keys directly under [sink] are deprecated; move them into "
                  f"{', '.join(f'[sink.{name}]' for name in sorted(targets))} (see docs/autoscan.md)",
                  ConfigDeprecationWarning, stacklevel=4)
    return moved


def load_config(path: str | Path | None, *, db_url: str | None = None, policy: str | None = None,
                sink: str | None = None, speedup: float | None = None) -> AutoscanConfig:
    """Read a TOML config file (``None`` = defaults), apply command-line overrides, then the
    environment.

    ``BRIGHTSCAN_SKYPORTAL_URL`` and the token fill the SkyPortal sink's URL and token when the
    file does not set them; the token from ``BRIGHTSCAN_SKYPORTAL_TOKEN``, the file named by
    ``BRIGHTSCAN_SKYPORTAL_TOKEN_FILE``, or systemd's ``$CREDENTIALS_DIRECTORY/skyportal-token``.
    """
    data = {} if path is None else _read_file(path, "config file", tomllib.loads, tomllib.TOMLDecodeError, "")
    config = config_from_dict(data)
    if db_url:
        config.db_url = db_url
    if policy and policy.endswith(".json"):  # a stored policy, e.g. evaluate's REPORT/policy.json
        config.policy = PolicyConfig(name=policy, stored=_read_policy_file(policy))
    elif policy:
        config.policy = PolicyConfig(name=policy, params=config.policy.params)
    if sink:
        config.sink.kind = sink
        config.sink.__post_init__()
    if speedup is not None:
        config.service.speedup = speedup
    config.__post_init__()  # re-validate after the overrides
    skyportal = config.sink.skyportal
    skyportal.url = skyportal.url or os.environ.get("BRIGHTSCAN_SKYPORTAL_URL")
    if skyportal.token:  # reject whitespace and control characters; the error never shows the value
        validate_token(skyportal.token, "the SkyPortal token ([sink.skyportal] token)")
    else:  # the environment, BRIGHTSCAN_SKYPORTAL_TOKEN_FILE, or systemd's LoadCredential=skyportal-token
        skyportal.token = find_token("BRIGHTSCAN_SKYPORTAL_TOKEN", "skyportal-token")
    return config


def _read_file(path: str | Path, what: str, loads: Any, decode_error: type[Exception], prefix: str,
               problem: str = "") -> Any:
    """Parse a user's file; ``ConfigError`` names it when it is missing or does not parse."""
    try:
        return loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found") from None
    except decode_error as exc:
        raise ConfigError(f"{prefix}{path}{problem}: {exc}") from None


def _read_policy_file(path: str) -> dict[str, Any]:
    import json

    data = _read_file(path, "policy file", json.loads, json.JSONDecodeError, "policy file ", " is not valid JSON")
    from brightscan.policy import policy_from_dict

    policy_from_dict(data)  # fail now, naming the file, rather than when the service starts
    return data
