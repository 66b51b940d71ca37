"""TOML config: sections, overrides, environment, sink construction."""

from __future__ import annotations

import pytest

from brightscan.autoscan.build import build_policy, build_sink
from brightscan.autoscan.config import ConfigDeprecationWarning, load_config
from brightscan.autoscan.sinks import LogSink, SkyPortalSink, WebhookSink
from brightscan.errors import ConfigError

TOML = """
[database]
url = "sqlite:///x.db"

[policy]
name = "gt2"
threshold = 0.7

[sink]
kind = "skyportal"

[sink.skyportal]
group_ids = [4, 5]
filter_ids = [11]

[sink.skyportal.followup]
allocation_id = 9
facility = "SEDM"
observation_type = "IFU"

[sink.skyportal.followup.payload]
priority = 3

[service]
max_attempts = 4
"""


def test_load_config_sections_env_and_overrides(tmp_path, monkeypatch):
    path = tmp_path / "a.toml"
    path.write_text(TOML)
    monkeypatch.setenv("BRIGHTSCAN_SKYPORTAL_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("BRIGHTSCAN_SKYPORTAL_TOKEN", "tok")
    cfg = load_config(path)
    skyportal = cfg.sink.skyportal
    assert (cfg.db_url, skyportal.group_ids, skyportal.followup["allocation_id"]) == ("sqlite:///x.db", [4, 5], 9)
    assert skyportal.followup["payload"] == {"priority": 3} and cfg.service.max_attempts == 4
    assert (skyportal.url, skyportal.token) == ("http://127.0.0.1:1", "tok")
    assert "tok" not in repr(cfg)
    policy = build_policy(cfg.policy)
    assert policy.get_params()["n"] == 2 and policy.get_params()["threshold"] == 0.7
    sink = build_sink(cfg.sink)
    assert isinstance(sink, SkyPortalSink) and sink.filter_ids == [11]
    plan = sink.followup  # defaults: 7 days, our groups as target and source groups
    assert (plan.validity_days, plan.target_group_ids, plan.source_group_ids) == (7.0, (4, 5), (4, 5))
    assert (sink.client.limiter.rate, sink.client.limiter.burst) == (5.0, 10)
    assert sink.annotation_origin == "brightscan:{model_id}:{model_version}"
    cfg = load_config(path, db_url="sqlite:///y.db", policy="gt1", sink="log", speedup=50.0)
    assert cfg.db_url == "sqlite:///y.db" and cfg.service.speedup == 50.0
    assert build_policy(cfg.policy).get_params()["threshold"] == 0.7  # params kept
    assert isinstance(build_sink(cfg.sink), LogSink)


def test_stored_policy_wins(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text('[policy]\nstored = { policy = "GtN", params = { n = 3, threshold = 0.4 } }\n')
    assert build_policy(load_config(path).policy).get_params()["n"] == 3


@pytest.mark.parametrize("text, message", [
    ("[sink]\nkind = 'carrier-pigeon'\n", "unknown sink"),
    ("[sinks]\nkind = 'log'\n", "unknown section"),
    ("[service]\nactions = ['save', 'tweet']\n", "unknown action"),
    ("[service]\nretries = 3\n", "unknown key"),
    ("[sink\n", "line 1"),
])
def test_bad_config_is_a_config_error(tmp_path, text, message):
    path = tmp_path / "a.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_sink_requirements(monkeypatch):
    monkeypatch.delenv("BRIGHTSCAN_SKYPORTAL_TOKEN", raising=False)
    monkeypatch.setenv("BRIGHTSCAN_SKYPORTAL_URL", "http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="token"):
        build_sink(load_config(None, sink="skyportal").sink)
    monkeypatch.setenv("BRIGHTSCAN_SKYPORTAL_TOKEN", "t")
    with pytest.raises(ConfigError, match="group_ids"):
        build_sink(load_config(None, sink="skyportal").sink)
    cfg = load_config(None, sink="skyportal")
    cfg.sink.skyportal.group_ids = [1]
    with pytest.raises(ConfigError, match="filter_ids"):
        build_sink(cfg.sink)
    with pytest.raises(ConfigError, match="URL"):
        build_sink(load_config(None, sink="webhook").sink)
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/autoscan.toml")
    cfg = load_config(None, sink="webhook")
    cfg.sink.webhook.url = "http://127.0.0.1:1/hook"
    assert isinstance(build_sink(cfg.sink), WebhookSink)


def test_a_policy_file_that_is_missing_or_not_a_policy_is_named(tmp_path):
    with pytest.raises(ConfigError, match="policy file .*nope.json not found"):
        load_config(None, policy=str(tmp_path / "nope.json"))
    (tmp_path / "bad.json").write_text('{"policy": "Nope"}')
    with pytest.raises(ConfigError, match="unknown policy class 'Nope'"):
        load_config(None, policy=str(tmp_path / "bad.json"))


@pytest.mark.parametrize("section, key, value, message", [
    ("followup", "priority", "9", "priority must be within"),
    ("followup", "observation_type", '"spectrum"', "observation_type must be one of"),
    ("followup", "validity_days", "0", "validity_days must be positive"),
    ("followup", "facility", '"Keck"', "no form known for facility"),
    ("followup", "constraints", "{ not_if_raining = true }", "unknown follow-up constraint"),
    ("followup", "allocation", "2", r"\[sink.skyportal.followup\]: unknown key"),
    ("skyportal", "annotation_origin", '"-{model_id}"', "must start with a letter"),
    ("skyportal", "annotation_origin", '"bs:{model}"', "bad placeholder"),
])
def test_skyportal_settings_are_checked_when_the_sink_is_built(tmp_path, monkeypatch, section, key, value, message):
    monkeypatch.setenv("BRIGHTSCAN_SKYPORTAL_TOKEN", "tok")
    tables = {"skyportal": {"url": '"http://127.0.0.1:1"', "group_ids": "[1]", "filter_ids": "[1]"},
              "followup": {"allocation_id": "2", "facility": '"SEDM"', "priority": "3",
                           "observation_type": '"IFU"'}}
    tables[section][key] = value
    path = tmp_path / "a.toml"
    path.write_text('[sink]\nkind = "skyportal"\n'
                    + "".join(f"[sink.{'skyportal.followup' if name == 'followup' else name}]\n"
                              + "".join(f"{k} = {v}\n" for k, v in keys.items()) for name, keys in tables.items()))
    with pytest.raises(ConfigError, match=message):
        build_sink(load_config(path).sink)


def test_a_flat_sink_section_still_works_with_a_warning_that_says_where_each_key_goes(tmp_path, monkeypatch):
    """Configs written before sections keep working: the same sink, and a warning naming the sections."""
    monkeypatch.setenv("BRIGHTSCAN_SKYPORTAL_TOKEN", "tok")
    path = tmp_path / "old.toml"
    path.write_text('[sink]\nkind = "skyportal"\nurl = "http://127.0.0.1:1"\ngroup_ids = [4]\nfilter_ids = [11]\n'
                    'allocation_id = 9\nfacility = "SEDM"\npriority = 3\nobservation_type = "IFU"\n'
                    'rate_limit = 2.0\npath = "old.jsonl"\n')
    with pytest.warns(ConfigDeprecationWarning) as caught:
        cfg = load_config(path)
    message = str(caught[0].message)
    assert all(f"[sink.{name}]" in message for name in ("skyportal", "skyportal.followup", "log")), message
    sink = build_sink(cfg.sink)
    assert isinstance(sink, SkyPortalSink) and sink.group_ids == [4] and sink.client.limiter.rate == 2.0
    assert (sink.followup.allocation_id, sink.followup.priority, sink.followup.target_group_ids) == (9, 3, (4,))
    assert cfg.sink.log.path == "old.jsonl"
    path.write_text('[sink]\nkind = "webhook"\nurl = "http://127.0.0.1:1/hook"\ntimeout_s = 2.0\n')
    with pytest.warns(ConfigDeprecationWarning, match=r"\[sink.webhook\]"):
        webhook = build_sink(load_config(path).sink)
    assert isinstance(webhook, WebhookSink) and webhook.timeout == 2.0
    path.write_text('[sink]\nkind = "log"\nnope = 1\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(path)


def test_each_sink_reads_its_own_section_only(tmp_path):
    """The webhook's URL is not the SkyPortal's: a [sink.skyportal] url does not make a webhook."""
    path = tmp_path / "a.toml"
    path.write_text('[sink]\nkind = "webhook"\n[sink.skyportal]\nurl = "http://127.0.0.1:1"\n')
    with pytest.raises(ConfigError, match=r"\[sink.webhook\] url"):
        build_sink(load_config(path).sink)


def test_the_documented_fritz_sedm_config_builds_a_sink(monkeypatch, tmp_path):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "autoscan.md").read_text()
    block = doc.split("## Fritz with SEDM")[1].split("```toml\n")[1].split("```")[0]
    path = tmp_path / "fritz.toml"
    path.write_text(block)
    monkeypatch.setenv("BRIGHTSCAN_SKYPORTAL_TOKEN", "tok")
    sink = build_sink(load_config(path).sink)
    plan = sink.followup
    assert (plan.facility, plan.priority, plan.observation_type, plan.validity_days) == ("SEDM", 5, "IFU", 7)
    assert plan.constraints == {"not_if_duplicates": True, "not_if_classified": True, "not_if_spectra_exist": True}
    assert sink.group_ids == [1234] and sink.client.limiter.rate == 5.0


def test_a_lease_must_last_some_time():
    from brightscan.autoscan.config import ServiceConfig

    assert ServiceConfig().lease_s == 60.0 and ServiceConfig().dispatch_thread
    with pytest.raises(ConfigError, match="lease_s"):
        ServiceConfig(lease_s=0)
