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
    kind = "skyportal"         # skyportal | webhook | log
    url = "https://fritz.science"   # or BRIGHTSCAN_SKYPORTAL_URL
    group_ids = [1234]
    filter_ids = [567]
    allocation_id = 56
    facility = "SEDM"
    priority = 5
    observation_type = "IFU"

The SkyPortal token comes from ``BRIGHTSCAN_SKYPORTAL_TOKEN`` (or ``sink.token``, discouraged).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from brightscan.errors import ConfigError
from brightscan.autoscan.secrets import validate_token

__all__ = ["AutoscanConfig", "PolicyConfig", "ServiceConfig", "SinkConfig", "load_config"]

ACTION_KINDS = ("save", "followup", "annotation")


@dataclass
class PolicyConfig:
    """Which source-level policy decides."""

    name: str = "gt1"  # brightscan.policy name (gt1, gt2, bts_prod, ...)
    params: dict[str, Any] = field(default_factory=dict)  # overrides, e.g. {"threshold": 0.7}
    stored: dict[str, Any] | None = None  # a fitted policy's to_dict(); wins over name/params


@dataclass
class SinkConfig:
    """Where actions go (the SkyPortal keys are described in ``docs/autoscan.md``)."""

    kind: str = "log"  # skyportal | webhook | log
    url: str | None = None  # SkyPortal base URL / webhook URL (env BRIGHTSCAN_SKYPORTAL_URL)
    token: str | None = None  # SkyPortal token; prefer env BRIGHTSCAN_SKYPORTAL_TOKEN
    path: str = "autoscan-actions.jsonl"  # log sink file (.jsonl or .csv)
    group_ids: list[int] = field(default_factory=list)  # groups to save to and annotate for
    filter_ids: list[int] = field(default_factory=list)  # SkyPortal filters candidates are posted for
    instrument_id: int | None = None  # SkyPortal id of ZTF (None: looked up by name)
    stream_ids: list[int] = field(default_factory=list)  # photometry streams (optional)
    allocation_id: int | None = None  # follow-up allocation
    facility: str | None = None  # form the request is checked against ("SEDM")
    priority: float | None = None  # follow-up priority (SEDM: 1-5)
    observation_type: str | None = None  # follow-up mode (SEDM: "IFU", "3-shot (gri)", ...)
    validity_days: float = 7.0  # request end_date = now + this
    target_group_ids: list[int] | None = None  # groups given the data (None: group_ids)
    source_group_ids: list[int] | None = None  # must be saved there first (None: group_ids)
    constraints: dict[str, Any] | None = None  # not_if_* constraints (None: the defaults)
    payload: dict[str, Any] = field(default_factory=dict)  # other instrument payload keys
    annotation_origin: str = "brightscan:{model_id}:{model_version}"  # origin of the annotation
    timeout_s: float = 10.0  # per HTTP request
    followup_timeout_s: float = 35.0  # the follow-up POST (SkyPortal calls the facility: SEDM 30 s)
    retries: int = 3  # re-tries of idempotent requests on 5xx / timeouts
    backoff_s: float = 0.5  # first retry delay, doubling
    rate_limit: float = 5.0  # requests per second to SkyPortal (0: no limit)
    rate_burst: int = 10  # requests allowed in a burst


@dataclass
class ServiceConfig:
    """How the service loop behaves."""

    actions: list[str] = field(default_factory=lambda: list(ACTION_KINDS))  # enqueued on first pass
    max_attempts: int = 8  # outbox attempts before an action is marked failed
    retry_base_s: float = 2.0  # outbox retry delay after a failed attempt, doubling
    retry_max_s: float = 300.0  # cap of that delay
    poll_interval_s: float = 1.0  # directory polling period
    speedup: float = 10.0  # replay speed-up
    drain_timeout_s: float = 600.0  # at the end of a finite source, wait this long for the outbox
    overflow: str = "reject"  # cutout overflow handling (see brightscan.preprocess)
    chunk_size: int = 500  # most alerts per transaction (a big file is split into chunks)
    dispatch_budget_s: float = 10.0  # longest delivery pass between two batches


@dataclass
class AutoscanConfig:
    """Everything ``brightscan autoscan`` needs besides the source and the model."""

    db_url: str = "sqlite:///autoscan.db"  # SQLAlchemy URL
    policy: PolicyConfig = field(default_factory=PolicyConfig)  # decision rule
    sink: SinkConfig = field(default_factory=SinkConfig)  # action destination
    service: ServiceConfig = field(default_factory=ServiceConfig)  # loop settings
    kafka: dict[str, Any] = field(default_factory=dict)  # confluent_kafka.Consumer settings

    def __post_init__(self) -> None:
        bad = [a for a in self.service.actions if a not in ACTION_KINDS]
        if bad:
            raise ConfigError(f"unknown action kind(s) {bad}; choose from {list(ACTION_KINDS)}")
        if self.sink.kind not in ("skyportal", "webhook", "log"):
            raise ConfigError(f"unknown sink {self.sink.kind!r} (skyportal, webhook or log)")


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
    known = {"sink", "service", "kafka"}
    if set(data) - known:
        raise ConfigError(f"unknown section(s) {sorted(set(data) - known)}")
    return AutoscanConfig(
        db_url=db.get("url", "sqlite:///autoscan.db"),
        policy=PolicyConfig(name=name, params=policy, stored=stored),
        sink=_build(SinkConfig, dict(data.get("sink", {})), "sink"),
        service=_build(ServiceConfig, dict(data.get("service", {})), "service"),
        kafka=dict(data.get("kafka", {})),
    )


def load_config(path: str | Path | None, *, db_url: str | None = None, policy: str | None = None,
                sink: str | None = None, speedup: float | None = None) -> AutoscanConfig:
    """Read a TOML config file (``None`` = defaults), apply command-line overrides, then the
    environment.

    ``BRIGHTSCAN_SKYPORTAL_URL`` and ``BRIGHTSCAN_SKYPORTAL_TOKEN`` fill the sink's URL and token
    when the file does not set them.
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
    if speedup is not None:
        config.service.speedup = speedup
    config.__post_init__()  # re-validate after the overrides
    if config.sink.kind == "skyportal":
        config.sink.url = config.sink.url or os.environ.get("BRIGHTSCAN_SKYPORTAL_URL")
    config.sink.token = config.sink.token or os.environ.get("BRIGHTSCAN_SKYPORTAL_TOKEN")
    if config.sink.token:  # issue 23: reject whitespace/control characters, never echo the value
        validate_token(config.sink.token, "sink token")
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
