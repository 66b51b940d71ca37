"""The demo: simulate a season → build the dataset → train → evaluate → replay the last night
through autoscan → its outcomes against the simulated classifications → summary. Each stage is one library call; this module only wires them."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from brightscan.errors import InputError

log = logging.getLogger(__name__)


class Tracker(Protocol):
    """Progress display for the demo: ``task = track(description, total)``, then
    ``task(n)`` after each ``n`` units of work and ``task(0, description)`` to retitle it."""

    def __call__(self, description: str, total: int | None) -> Callable[..., None]: ...


def _no_progress(description: str, total: int | None) -> Callable[..., None]:
    log.info(description)
    return lambda n=1, description=None: None


@dataclass(frozen=True)
class DemoSize:
    """How big a demo run is."""

    n_sources: int  # simulated sources
    n_nights: int  # survey length in nights
    epochs: int  # maximum training epochs (early stopping may end sooner)
    max_steps_per_epoch: int | None  # cap on optimisation steps per epoch (None: full epochs)
    batch_size: int  # training batch size (the paper's recipe uses 16)
    nmax: int  # N_max thinning of the training split


DEMO_SIZES: dict[str, DemoSize] = {
    # CI's smoke size: about two minutes on 2 cores; numbers are meaningful, not good.
    "tiny": DemoSize(n_sources=120, n_nights=40, epochs=2, max_steps_per_epoch=60, batch_size=32, nmax=60),
    # The README's main job: at most 10 minutes on 2 cores.
    "small": DemoSize(n_sources=900, n_nights=100, epochs=10, max_steps_per_epoch=None, batch_size=32, nmax=60),
    # The paper's scale (14,000 sources, ~560,000 alerts): hours on a CPU.
    "paper": DemoSize(n_sources=14000, n_nights=365, epochs=50, max_steps_per_epoch=None, batch_size=16, nmax=60),
}

PRESET = "mi_cnn.icml2023"
#: Per survey: the model preset trained and the feature set of the dataset built.
SURVEY_SETUP: dict[str, tuple[str, str]] = {"ztf": (PRESET, "v1"), "rubin": ("mm_cnn.rubin", "rubin_v1")}
#: Per survey, the preset the tiny size trains instead (CI's smoke run; ZTF's model is small enough).
TINY_PRESETS: dict[str, str] = {"rubin": "mm_cnn.rubin_tiny"}


def run_demo(out_dir: str | Path, size: str = "small", seed: int = 0,
             track: Tracker | None = None, survey: str = "ztf") -> dict[str, Any]:
    """Run every stage and write ``out_dir/summary.json``; return the summary.

    Parameters
    ----------
    out_dir : path
        Created if needed; an earlier demo output there is replaced.
    size : {"tiny", "small", "paper"}
    seed : int
        Seeds the simulator, the split, the training and the replay.
    track : Tracker, optional
        Progress display: called once per stage with a description and its total work.
    survey : {"ztf", "rubin"}
        Which survey to simulate and train on (Rubin: docs/rubin.md).
    """
    if size not in DEMO_SIZES:
        raise InputError(f"unknown demo size {size!r}; choose from {', '.join(DEMO_SIZES)}")
    if survey not in SURVEY_SETUP:
        raise InputError(f"unknown survey {survey!r}; choose from {', '.join(SURVEY_SETUP)}")
    preset, feature_set = SURVEY_SETUP[survey]
    if size == "tiny":
        preset = TINY_PRESETS.get(survey, preset)
    spec = DEMO_SIZES[size]
    out = Path(out_dir)
    _clear(out)
    track = track or _no_progress
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {"size": size, "seed": seed, "spec": asdict(spec), "survey": survey, "preset": preset}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = fn()
        timings[name] = round(time.perf_counter() - start, 1)
        return result

    simulate = _simulate_rubin if survey == "rubin" else _simulate
    simulated = timed("simulate", lambda: simulate(out / "survey", spec, seed, track))
    summary["survey"] = simulated
    card = timed("dataset", lambda: _build_dataset(out, spec, seed, simulated["n_alerts"], track, feature_set))
    summary["dataset"] = {split: card.get("splits", {}).get(split) for split in ("train", "val", "test")}
    summary["training"] = timed("train", lambda: _train(out, spec, seed, card, track, preset))
    metrics = timed("evaluate", lambda: _evaluate(out, card, track))
    summary["evaluation"] = _headline(metrics)
    summary["autoscan"] = timed("autoscan", lambda: _replay_last_night(out, metrics, track))
    summary["timings_s"] = timings
    summary["report"] = "report"
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return summary


def _clear(out: Path) -> None:
    # Only a previous demo output is removed, never an arbitrary directory.
    if out.exists() and any(out.iterdir()):
        if not (out / "survey").exists() and not (out / "summary.json").exists():
            raise InputError(f"{out} exists and is not a demo output; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _simulate(out: Path, spec: DemoSize, seed: int, track: Tracker) -> dict[str, Any]:
    from brightscan.simulate.config import SurveyConfig
    from brightscan.simulate.survey import simulate_survey

    config = SurveyConfig(n_sources=spec.n_sources, seed=seed, n_nights=spec.n_nights, start_date=date(2023, 3, 1))
    step = track(f"simulating {spec.n_sources} sources over {spec.n_nights} nights", spec.n_sources)
    result = simulate_survey(config, out, progress=step)
    return {"n_sources": result.n_sources, "n_alerts": result.n_alerts,
            "n_positive_sources": result.n_positive_sources, "n_saved_by_scanners": result.n_saved}


def _simulate_rubin(out: Path, spec: DemoSize, seed: int, track: Tracker) -> dict[str, Any]:
    from brightscan.simulate.rubin import RubinSurveyConfig, simulate_rubin_survey

    track(f"simulating {spec.n_sources} Rubin sources over {spec.n_nights} nights", None)
    counts = simulate_rubin_survey(RubinSurveyConfig(n_sources=spec.n_sources, n_nights=spec.n_nights, seed=seed), out)
    return {"n_sources": counts["sources"], "n_alerts": counts["alerts"],
            "n_positive_sources": counts["positive"], "n_saved_by_scanners": counts["saved"]}


def _nights(out: Path) -> list[Path]:
    return sorted(p for p in (out / "survey" / "alerts").iterdir())


def _build_dataset(out: Path, spec: DemoSize, seed: int, n_alerts: int, track: Tracker,
                   feature_set: str = "v1") -> dict[str, Any]:
    from brightscan.dataset.build import BuildConfig, build_dataset

    config = BuildConfig(nmax=spec.nmax, seed=seed, feature_set=feature_set)
    step = track("building the dataset (causal features, N_max, source-disjoint splits)", n_alerts)
    return build_dataset([out / "survey" / "alerts"], out / "survey" / "labels.csv", out / "dataset", config,
                         on_item=step)


def _train(out: Path, spec: DemoSize, seed: int, card: dict[str, Any], track: Tracker,
           preset: str = PRESET) -> dict[str, Any]:
    from brightscan.train.config import TrainConfig
    from brightscan.train.trainer import Trainer

    # fp32, not auto: the demo's figures are quoted in the docs and must not depend on the CPU
    config = TrainConfig(preset=preset, epochs=spec.epochs, seed=seed, precision="fp32",
                         max_steps_per_epoch=spec.max_steps_per_epoch,
                         recipe={"batch_size": spec.batch_size})
    epochs, per_epoch = config.schedule(int(card["splits"]["train"]["alerts"]))
    title = f"training {preset} on the CPU: epoch {{}} of {epochs}"
    step = track(title.format(1), epochs * per_epoch)

    def on_epoch(row: dict[str, Any]) -> None:
        step(0, title.format(min(row["epoch"] + 1, epochs)) + f" (last val AUC {row['val_auc']:.3f})")

    trainer = Trainer(config).fit(out / "dataset", out / "model", on_step=step, on_epoch=on_epoch)
    result = trainer.result_
    return {key: value for key, value in asdict(result).items() if not isinstance(value, (list, dict))}


def _evaluate(out: Path, card: dict[str, Any], track: Tracker) -> dict[str, Any]:
    from brightscan.evaluate.report import evaluate

    n_alerts = sum(int(card["splits"][split]["alerts"]) for split in ("val", "test"))
    step = track("evaluating (alert level, every policy, the policy search, calibration)", n_alerts)
    return evaluate(out / "model", out / "dataset", out=out / "report",
                    scanner_saves=out / "survey" / "scanner_saves.csv", progress=step,
                    command=f"brightscan demo --out {out}")


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("completeness", "purity", "n_sources", "median_delay_days")
    return {
        "alert": {k: metrics["alert"][k] for k in ("auc", "accuracy", "precision", "recall", "n_alerts")},
        "policies": {name: {k: values.get(k) for k in keep}
                     for name, values in metrics["policies"].items() if name in ("gt1", "optimised")},
        "ece": metrics["calibration"]["ece"],
    }


def _replay_last_night(out: Path, metrics: dict[str, Any], track: Tracker) -> dict[str, Any]:
    from brightscan.autoscan.config import AutoscanConfig, LogSinkSettings, PolicyConfig, ServiceConfig, SinkConfig
    from brightscan.autoscan.write.runner import run_autoscan

    night = _nights(out)[-1]
    stored = metrics["policies"].get("optimised", {}).get("policy")
    policy = PolicyConfig(name="gt1", stored=stored) if stored else PolicyConfig(name="gt1")
    config = AutoscanConfig(
        db_url=f"sqlite:///{out / 'autoscan.db'}",
        policy=policy,
        sink=SinkConfig(kind="log", log=LogSinkSettings(path=str(out / "autoscan-actions.jsonl"))),
        service=ServiceConfig(speedup=float("inf")),
    )
    from brightscan.autoscan.pages.night import write_summary

    track(f"replaying the last night ({night.name}) through autoscan (log sink)", None)
    report = run_autoscan(config, f"replay:{night}", out / "model")
    night_page = write_summary(config.db_url, night.name, out / "autoscan-summary")
    result = {"night": night.name, "alerts_scored": report.alerts, "sources_passed": report.passed,
              "actions_done": report.actions_done, "actions_failed": report.actions_failed,
              "actions_log": str(out / "autoscan-actions.jsonl"), "night_summary": str(night_page),
              "policy": "optimised" if stored else "gt1"}
    if (out / "survey" / "bts_explorer.csv").is_file():  # the ZTF simulator writes it
        result["outcomes"] = _outcomes(config.db_url, out)
    return result


def _outcomes(db_url: str, out: Path) -> dict[str, Any]:
    """The replayed night's saves against the simulator's later classifications (its BTS explorer
    file) and the scanners' save times: the figures and the outcomes page."""
    from brightscan.autoscan.outcomes.run import run_outcomes
    from brightscan.autoscan.pages.outcomes import write_outcomes_page

    survey = out / "survey"
    report = run_outcomes(db_url, survey / "bts_explorer.csv", fmt="bts", saves=survey / "scanner_saves.csv")
    page = write_outcomes_page(report, out / "autoscan-outcomes")
    figures = report.to_dict()["overall"]
    return {**figures, "n_bright_not_in_feed": report.n_bright_not_in_feed, "page": str(page),
            "classifications": str(survey / "bts_explorer.csv")}
