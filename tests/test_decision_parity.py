"""Autoscan and the offline evaluation decide with one core: over the same simulated night they
pass the same objects at the same alerts.

The night comes from the built-in simulator (real Avro packets). Autoscan replays it into an empty
database; the evaluation path prepares the same files as ``brightscan preprocess --causal`` does,
scores them with the model package, and replays each object through
:func:`brightscan.evaluate.objects.apply_policy`.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from brightscan.autoscan.config import ServiceConfig
from brightscan.autoscan.write.service import AutoscanService, load_scorer
from brightscan.autoscan.sinks import LogSink
from brightscan.autoscan.write.feeds import ReplayFeed
from brightscan.autoscan.store import alerts, open_store, sources
from brightscan.evaluate.objects import apply_policy, build_objects
from brightscan.policy import create_policy
from brightscan.preprocess import feature_names
from brightscan.preprocess.batch import preprocess_to_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def busiest_night(tmp_path_factory):
    from brightscan.simulate.config import SurveyConfig
    from brightscan.simulate.survey import simulate_survey

    out = tmp_path_factory.mktemp("survey")
    simulate_survey(SurveyConfig(n_sources=200, seed=3, n_nights=20, start_date=date(2023, 3, 1)), out)
    nights = sorted((out / "alerts").iterdir(), key=lambda night: len(list(night.iterdir())))
    return nights[-1]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from brightscan.model import create_model, save_model

    return save_model(create_model("mi_cnn.tiny", seed=1), tmp_path_factory.mktemp("model") / "tiny")


def _evaluation_scores(night, model, tmp_path) -> pd.DataFrame:
    """The evaluation's view of the night: causal features and the model's scores, per alert."""
    scorer = load_scorer(model)
    preprocess_to_dir([night], tmp_path / "prep", scorer.feature_set, causal=True)
    table = pd.read_parquet(tmp_path / "prep" / "alerts.parquet")
    triplets = np.load(tmp_path / "prep" / "triplets.npy")
    names = list(feature_names(scorer.feature_set))
    return table.assign(score=scorer.score_arrays(triplets, table[names].to_numpy(np.float32)), label=0)


@pytest.mark.parametrize("policy_name, overrides", [
    ("gt1", {}),
    ("gt2", {"min_age": 0.5, "max_magpsf": 19.5}),
])
def test_autoscan_and_evaluation_decide_the_same(busiest_night, model, tmp_path, policy_name, overrides):
    table = _evaluation_scores(busiest_night, model, tmp_path)
    # a threshold inside the score range, so some objects pass and some do not
    policy = create_policy(policy_name, threshold=float(np.quantile(table["score"], 0.7)), **overrides)
    objects = build_objects(table, table["score"].to_numpy())
    passed, pass_jd = apply_policy(policy, objects)
    offline = {o.object_id: jd for o, ok, jd in zip(objects, passed, pass_jd) if ok}

    store = open_store(f"sqlite:///{tmp_path / 'autoscan.db'}")
    service = AutoscanService(store, load_scorer(model), policy, LogSink(tmp_path / "actions.jsonl"),
                              ServiceConfig(retry_base_s=0.0))
    service.run(ReplayFeed(busiest_night, speedup=float("inf")))
    with store.engine.connect() as conn:
        stored = pd.DataFrame(conn.execute(sa.select(alerts.c.candid, alerts.c.score)).mappings().all())
        live = {r["object_id"]: r["identified_jd"] for r in conn.execute(
            sa.select(sources.c.object_id, sources.c.identified_jd).where(sources.c.policy_state == "passed")
        ).mappings()}
    store.dispose()

    scores = table.set_index("candid")["score"]
    assert len(stored) == len(table) > 100  # a busy night: several alerts per object
    np.testing.assert_allclose(stored.set_index("candid")["score"].sort_index(), scores.sort_index(), atol=1e-6)
    assert 0 < len(offline) < len(objects)
    assert live == offline  # the same objects, at the same alert (decision time = its jd)
