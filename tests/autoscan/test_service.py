"""The service loop: one transaction per batch, causal history, outbox delivery after crashes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sqlalchemy as sa

from brightscan.alerts import Alert, read_file
from brightscan.autoscan.config import ServiceConfig
from tests.autoscan.fakeportal import FakeSkyPortal
from brightscan.autoscan.write.service import AutoscanService, load_scorer
from brightscan.autoscan.sinks.skyportal.followup import FollowupPlan
from brightscan.autoscan.actions import SinkError
from brightscan.autoscan.sinks import LogSink, SkyPortalSink
from brightscan.autoscan.sinks.skyportal.client import SkyPortalClient
from brightscan.autoscan.write.feeds import Delivery, DirectoryFeed, ReplayFeed
from brightscan.autoscan.store import action_attempts, actions, alerts, consumed_inputs, open_store, sources
from brightscan.policy import create_policy
from brightscan.preprocess import compute_features, feature_names


def _service(db_url, model, sink, threshold=0.0, **config):
    store = open_store(db_url)
    return AutoscanService(store, load_scorer(model), create_policy("gt1", threshold=threshold), sink,
                           ServiceConfig(**{"retry_base_s": 0.0, "lease_s": 1.0, **config}))


def _rows(store, table, *cols):
    with store.engine.connect() as conn:
        query = sa.select(*(table.c[c] for c in cols)) if cols else sa.select(table)
        return conn.execute(query.order_by(*table.primary_key.columns)).mappings().all()


def test_night_scored_stored_and_acted_on(db_url, tiny_model, night, tmp_path):
    night_dir, truth = night
    service = _service(db_url, tiny_model, LogSink(tmp_path / "actions.jsonl"))
    assert service.run(ReplayFeed(night_dir, speedup=float("inf"))) == 0
    stored = _rows(service.store, alerts)
    assert sorted(r["candid"] for r in stored) == sorted(r["candid"] for r in truth)
    assert {r["model_id"] for r in stored} == {"mi_cnn.tiny"}
    assert all(0.0 <= r["score"] <= 1.0 for r in stored)
    objects = {r["objectId"] for r in truth}
    passed = _rows(service.store, sources)
    assert {p["object_id"] for p in passed if p["policy_state"] == "passed"} == objects
    assert all(p["saved_at"] and p["followup_state"] == "requested" for p in passed)
    assert len(np.frombuffer(passed[0]["triplet"], np.float16)) == 63 * 63 * 3
    lines = [json.loads(x) for x in (tmp_path / "actions.jsonl").read_text().splitlines()]
    assert sorted(x["idempotency_key"] for x in lines) == sorted(
        f"{k}:{o}" for o in objects for k in ("save", "followup", "annotation"))
    assert {r["key"] for r in _rows(service.store, consumed_inputs)} == {
        f"replay:{p.resolve()}" for p in night_dir.glob("*.avro")}
    service.store.dispose()


def test_history_features_are_recomputed_causally_from_stored_alerts(tiny_model, night, tmp_path):
    night_dir, truth = night
    service = _service(f"sqlite:///{tmp_path / 'db'}", tiny_model, LogSink(tmp_path / "a.jsonl"))
    service.run(ReplayFeed(night_dir, speedup=float("inf")))
    by_candid = {r["candid"]: r for r in _rows(service.store, alerts)}
    names = feature_names("icml2023")
    packets = {a.candid: a for p in night_dir.glob("*.avro") for a in read_file(p) if isinstance(a, Alert)}
    for obj in {r["objectId"] for r in truth}:
        mine = sorted((a for a in packets.values() if a.object_id == obj), key=lambda a: a.jd)
        for k, alert in enumerate(mine):
            earlier = [{"candid": e.candid, "jd": e.jd, "magpsf": e.candidate["magpsf"],
                        "fid": e.candidate["fid"]} for e in mine[:k]]
            want = dict(zip(names, compute_features(alert, "icml2023", earlier=earlier).tolist()))
            got = by_candid[alert.candid]["features"]
            assert got["peakmag_so_far"] == pytest.approx(want["peakmag_so_far"], abs=1e-4)
            assert got["age"] == pytest.approx(want["age"], abs=1e-4)
        # the later, brighter alerts really entered the history of the last one
        last = by_candid[mine[-1].candid]["features"]
        assert last["peakmag_so_far"] <= mine[-1].candidate["magpsf"] + 1e-4
    service.store.dispose()


class _Killed(BaseException):
    """The process dying mid-batch (not an exception of the input: nothing may be quarantined)."""


class _ExplodingScorer:
    def __init__(self, inner, fail_on_call):
        self.inner, self.calls, self.fail_on_call = inner, 0, fail_on_call
        self.model_id, self.model_version, self.feature_set = inner.model_id, inner.model_version, inner.feature_set

    def score_arrays(self, t, f):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise _Killed("killed while scoring")
        return self.inner.score_arrays(t, f)


def test_a_failing_batch_leaves_nothing_behind(tiny_model, night, tmp_path):
    night_dir, truth = night
    url = f"sqlite:///{tmp_path / 'db'}"
    service = _service(url, tiny_model, LogSink(tmp_path / "a.jsonl"))
    service.scorer = _ExplodingScorer(service.scorer, fail_on_call=4)
    with pytest.raises(_Killed):
        service.run(DirectoryFeed(night_dir, once=True))
    assert len(_rows(service.store, alerts)) == 3 == len(_rows(service.store, consumed_inputs))
    assert len(_rows(service.store, actions)) <= 3 * 3  # only the committed batches' actions
    service.scorer = service.scorer.inner  # "restart": the failed file is read again
    service.run(DirectoryFeed(night_dir, once=True))
    assert len(_rows(service.store, alerts)) == len(truth)
    service.store.dispose()


def test_redelivered_alerts_are_stored_once(tiny_model, night, tmp_path):
    night_dir, truth = night
    service = _service(f"sqlite:///{tmp_path / 'db'}", tiny_model, LogSink(tmp_path / "a.jsonl"))
    items = [a for p in sorted(night_dir.glob("*.avro")) for a in read_file(p)]
    first = service.process_delivery(Delivery(items=items[:20], arrived_at=0.0, key=None, origin="kafka"))
    again = service.process_delivery(Delivery(items=items[:25], arrived_at=0.0, key=None, origin="kafka"))
    assert (first.stored, again.stored, again.duplicates) == (20, 5, 20)
    assert not set(first.passed) & set(again.passed)
    keys = [r["idempotency_key"] for r in _rows(service.store, actions)]
    assert len(keys) == len(set(keys))
    service.store.dispose()


def test_no_actions_when_the_policy_does_not_pass(tiny_model, night, tmp_path):
    night_dir, _ = night
    service = _service(f"sqlite:///{tmp_path / 'db'}", tiny_model, LogSink(tmp_path / "a.jsonl"),
                       threshold=1.0)
    service.run(ReplayFeed(night_dir, speedup=float("inf")))
    assert _rows(service.store, actions) == []
    assert {r["policy_state"] for r in _rows(service.store, sources)} == {"watching"}
    service.store.dispose()


class _CrashAfterAck:
    """Delivers, then dies before the outbox can record it (SIGKILL stand-in)."""

    def __init__(self, inner):
        self.inner = inner

    def deliver(self, action):
        self.inner.deliver(action)
        raise KeyboardInterrupt


def test_crash_between_ack_and_done_does_not_repeat_the_action(tiny_model, night, tmp_path):
    night_dir, _ = night
    url = f"sqlite:///{tmp_path / 'db'}"
    with FakeSkyPortal("tok") as portal:
        plan = FollowupPlan(allocation_id=2, target_group_ids=(1,), priority=3, observation_type="IFU")
        sink = SkyPortalSink(SkyPortalClient(portal.url, "tok", timeout=2, rate=0), group_ids=[1],
                             filter_ids=[1], followup=plan)
        service = _service(url, tiny_model, _CrashAfterAck(sink), actions=["save", "followup"])
        with pytest.raises(KeyboardInterrupt):
            service.run(ReplayFeed(night_dir, speedup=float("inf")))
        pending = [r for r in _rows(service.store, actions) if r["state"] == "pending"]
        assert pending and portal.count("sources") == {pending[0]["object_id"]: 1}
        service.store.dispose()
        restarted = _service(url, tiny_model, sink, actions=["save", "followup"])
        assert restarted.run(ReplayFeed(night_dir, speedup=float("inf"))) == 0
        saves = [c.body["id"] for c in portal.calls if c.method == "POST" and c.path == "/api/sources"]
        assert sorted(saves) == sorted(set(saves)) and set(portal.count("followups").values()) == {1}
        assert len(saves) == len(_rows(restarted.store, sources))
        details = [r["detail"] for r in _rows(restarted.store, action_attempts)]
        assert any(d.startswith("already saved") for d in details)
        restarted.store.dispose()


class _Flaky:
    def __init__(self, fail_times, retryable=True):
        self.fail_times, self.retryable, self.seen = fail_times, retryable, []

    def deliver(self, action):
        self.seen.append(action.idempotency_key)
        if self.fail_times > 0:
            self.fail_times -= 1
            raise SinkError("HTTP 503 try later", retryable=self.retryable)
        return "ok"


def test_retries_keep_per_source_order_and_give_up_after_max_attempts(tiny_model, night, tmp_path):
    night_dir, _ = night
    files = sorted(night_dir.glob("*.avro"))[:1]
    flaky = _Flaky(fail_times=2)
    service = _service(f"sqlite:///{tmp_path / 'db'}", tiny_model, flaky, max_attempts=5)
    service.run(ReplayFeed(files, speedup=float("inf")))
    obj = flaky.seen[0].split(":")[1]
    assert flaky.seen == [f"save:{obj}"] * 3 + [f"followup:{obj}", f"annotation:{obj}"]
    hist = _rows(service.store, action_attempts)
    assert [h["outcome"] for h in hist] == ["retry", "retry", "done", "done", "done"]
    service.store.dispose()

    hopeless = _Flaky(fail_times=10**6, retryable=False)
    service = _service(f"sqlite:///{tmp_path / 'db2'}", tiny_model, hopeless, max_attempts=5)
    assert service.run(ReplayFeed(files, speedup=float("inf"))) == 0
    assert [r["state"] for r in _rows(service.store, actions)] == ["failed"] * 3
    assert hopeless.seen == [f"save:{obj}"]  # non-retryable: one attempt; nothing follows a failed save
    assert "earlier action" in _rows(service.store, actions)[1]["last_error"]
    service.store.dispose()


class _NaNScorer(_ExplodingScorer):
    def score_arrays(self, t, f):
        scores = self.inner.score_arrays(t, f)
        scores[0] = float("nan")
        return scores


def test_a_non_finite_score_is_a_rejection_not_a_made_up_score(tiny_model, night, tmp_path):
    night_dir, truth = night
    service = _service(f"sqlite:///{tmp_path / 'db'}", tiny_model, LogSink(tmp_path / "a.jsonl"))
    service.scorer = _NaNScorer(service.scorer, fail_on_call=-1)
    files = sorted(night_dir.glob("*.avro"))[:4]
    for f in files:
        service.process_delivery(Delivery(items=list(read_file(f)), arrived_at=0.0, key=str(f), origin=str(f)))
    from brightscan.autoscan.store import rejections

    assert len(_rows(service.store, alerts)) == 0
    assert [r["stage"] for r in _rows(service.store, rejections)] == ["score"] * 4
    service.store.dispose()


def test_a_tarball_killed_between_chunks_is_finished_without_repeats(tiny_model, night, tmp_path):
    """Big inputs commit chunk by chunk; a crash in between re-reads the file, skipping what is stored."""
    import tarfile

    from brightscan.autoscan.store import rejections

    night_dir, truth = night
    tarball = tmp_path / "in" / "20251121.tar.gz"
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as tar:
        for f in sorted(night_dir.glob("*.avro")):
            tar.add(f, arcname=f"20251121/{f.name}")
        (tmp_path / "junk.avro").write_bytes(b"Obj\x01 this is not a packet")
        tar.add(tmp_path / "junk.avro", arcname="20251121/junk.avro")
    url = f"sqlite:///{tmp_path / 'db'}"
    service = _service(url, tiny_model, LogSink(tmp_path / "a.jsonl"), chunk_size=10)
    service.scorer = _ExplodingScorer(service.scorer, fail_on_call=3)
    with pytest.raises(_Killed):
        service.run(DirectoryFeed(tarball.parent, once=True))
    assert len(_rows(service.store, alerts)) == 20 and _rows(service.store, consumed_inputs) == []
    service.scorer = service.scorer.inner
    service.run(DirectoryFeed(tarball.parent, once=True))
    assert sorted(r["candid"] for r in _rows(service.store, alerts)) == sorted(r["candid"] for r in truth)
    assert len(_rows(service.store, consumed_inputs)) == 1
    assert len(_rows(service.store, rejections)) == 1  # the junk member, recorded once
    keys = [r["idempotency_key"] for r in _rows(service.store, actions)]
    assert len(keys) == len(set(keys)) == 3 * len({r["objectId"] for r in truth})
    service.store.dispose()


def test_a_sink_outage_does_not_stall_ingestion(tiny_model, night, tmp_path):
    """One retryable failure ends the delivery pass; the alerts keep flowing into the database."""
    night_dir, truth = night
    down = _Flaky(fail_times=10**6)
    service = _service(f"sqlite:///{tmp_path / 'db'}", tiny_model, down, retry_base_s=3600.0)
    assert service.run(ReplayFeed(night_dir, speedup=float("inf")), drain=False) > 0
    assert len(_rows(service.store, alerts)) == len(truth)
    n_sources = len({r["objectId"] for r in truth})
    # each pass ends at the first failure: no save was tried twice, nothing else while down
    assert 0 < len(down.seen) <= n_sources and all(k.startswith("save:") for k in down.seen)
    assert len(set(down.seen)) == len(down.seen)
    service.sink = _Flaky(fail_times=0)  # back up: after the retry delay everything goes out
    service.clock = lambda: 10**12
    assert service.drain(timeout_s=10**13) == 0
    service.store.dispose()


def _decide_in_two_halves(tiny_model, files, tmp_path, name, *, forget_state):
    service = AutoscanService(open_store(f"sqlite:///{tmp_path / name}"), load_scorer(tiny_model),
                              create_policy("gt2", threshold=0.0), LogSink(tmp_path / f"{name}.jsonl"),
                              ServiceConfig(retry_base_s=0.0))
    half = len(files) // 2
    for i, f in enumerate(files):
        if i == half and forget_state:  # a database from before the state was kept
            with service.store.transaction() as conn:
                conn.execute(sa.update(sources).values(decision=None))
        service.process_delivery(Delivery(items=list(read_file(f)), arrived_at=0.0, key=str(f), origin=str(f)))
    rows = {r["object_id"]: (r["policy_state"], r["identified_candid"], r["n_alerts"], r["last_score"])
            for r in _rows(service.store, sources)}
    states = {r["object_id"]: r["decision"] and r["decision"]["state"] for r in _rows(service.store, sources)}
    service.store.dispose()
    return rows, states


def test_the_decision_state_is_rebuilt_once_when_missing(tiny_model, night, tmp_path):
    """An object's stored state makes each decision O(1); without it (an older database, another
    policy) the state is rebuilt from the stored alerts and the decisions are the same."""
    night_dir, truth = night
    jd = {r["candid"]: r["jd"] for r in truth}
    files = sorted(night_dir.glob("*.avro"), key=lambda f: jd[int(f.stem)])  # the night in jd order
    kept, kept_states = _decide_in_two_halves(tiny_model, files, tmp_path, "kept", forget_state=False)
    rebuilt, rebuilt_states = _decide_in_two_halves(tiny_model, files, tmp_path, "rebuilt", forget_state=True)
    assert kept == rebuilt
    assert {state for state, *_ in kept.values()} == {"passed"}  # gt2 at threshold 0: the 2nd alert
    assert all(s["n_alerts"] == 3 and s["memory"] == [3] for s in kept_states.values())
    touched = {o: s for o, s in rebuilt_states.items() if s is not None}  # alerts after the loss
    assert len(touched) >= 3 and all(kept_states[o] == s for o, s in touched.items())
