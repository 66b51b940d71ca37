"""A learning curve on the built-in survey: the paper's pipeline at several survey sizes.

Per size ``N`` (``OUT/n<N>/``): simulate N sources → build the dataset with the paper's recipe
(N_max 60, 81/9/10 source-disjoint splits) → train each preset → evaluate on the unthinned test
split (alert AUC, Fig. 2 outcomes, gt1/gt3/bts_prod and the policy optimised on validation, with
bootstrap intervals over sources), with the published model scored on the very same alerts.
Each stage leaves a done-marker (:mod:`brightscan.experiments.stages`), and training resumes from
its checkpoint, so a run cut short and started again loses only the stage it was in; a larger
``--epochs`` continues a finished training from its checkpoint (and evaluates it again).
``OUT/curve.json`` gathers one row per size and preset.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from brightscan.errors import ConfigError
from brightscan.experiments.stages import StageRunner

log = logging.getLogger(__name__)

__all__ = ["CurveConfig", "ProgressHook", "curve_rows", "run_learning_curve", "write_curve"]

#: Name of the published model's folder under ``OUT``.
PUBLISHED_DIR = "published"


@dataclass(frozen=True)
class CurveConfig:
    """Settings of one learning curve (every row shares them but the size)."""

    sizes: tuple[int, ...] = (900, 2000, 4000)  # simulated sources per row
    presets: tuple[str, ...] = ("mi_cnn.icml2023",)  # model presets trained at every size
    nights: int = 365  # survey length in nights (the paper's survey spans about a year)
    seed: int = 0  # seeds the simulator, the split and the training
    epochs: int | None = None  # cap on training epochs (None: the recipe's 200, early stopping)
    batch_size: int | None = None  # training batch (None: the recipe's 16)
    precision: str = "auto"  # training arithmetic: auto (bf16 where native and faster), fp32 or bf16
    nmax: int = 60  # N_max thinning of the training split (the paper's 60)
    fractions: tuple[float, float, float] = (0.81, 0.09, 0.10)  # source fractions train/val/test
    workers: int = 2  # simulator worker processes
    threads: int | None = None  # torch threads for training and scoring (None: torch's default)
    published: str | None = None  # Keras SavedModel of the published model (None: not compared)
    stratify: str = "class"  # split stratified by label and class, or by label only ("label")
    drop_alerts: bool = False  # delete the survey's alert files once the dataset is built
    drop_datasets: bool = False  # delete a row's dataset once every preset is evaluated on it

    def __post_init__(self) -> None:
        if not self.sizes or any(int(n) < 10 for n in self.sizes):
            raise ConfigError(f"sizes must be at least 10 sources each, not {self.sizes!r}")
        if not self.presets:
            raise ConfigError("give at least one model preset")


class ProgressHook:
    """What a long run reports; the CLI draws bars from it. The default logs stages only."""

    def stage(self, text: str, total: int | None = None) -> None:
        """A stage starts (``total``: units it will advance by, when known)."""
        log.info(text)

    def advance(self, n: int = 1) -> None:
        """``n`` more units of the current stage are done."""


def _simulate(row: Path, size: int, config: CurveConfig, hook: ProgressHook) -> dict[str, Any]:
    from brightscan.simulate import SurveyConfig, simulate_survey

    shutil.rmtree(row / "survey", ignore_errors=True)  # a simulation cut short starts over
    survey = SurveyConfig(n_sources=size, seed=config.seed, n_nights=config.nights,
                          start_date=date(2023, 3, 1), n_workers=config.workers).validate()
    hook.stage(f"n={size}: simulating {size} sources over {config.nights} nights", total=size)
    result = simulate_survey(survey, row / "survey", progress=hook.advance)
    return {"n_sources": result.n_sources, "n_alerts": result.n_alerts,
            "n_positive_sources": result.n_positive_sources, "n_saved_by_scanners": result.n_saved}


def _build(row: Path, size: int, config: CurveConfig, hook: ProgressHook, n_alerts: int) -> dict[str, Any]:
    from brightscan.dataset import BuildConfig, build_dataset

    shutil.rmtree(row / "dataset", ignore_errors=True)
    build = BuildConfig(nmax=config.nmax, fractions=config.fractions, seed=config.seed, feature_set="v1",
                        stratify=config.stratify)
    hook.stage(f"n={size}: building the dataset (N_max {config.nmax}, source-disjoint splits "
               f"stratified by {config.stratify})", total=n_alerts)
    card = build_dataset([row / "survey" / "alerts"], row / "survey" / "labels.csv", row / "dataset", build,
                         on_item=lambda: hook.advance(1))
    return {split: card.get("splits", {}).get(split) for split in ("train", "val", "test")}


def _train(row: Path, size: int, preset: str, config: CurveConfig, hook: ProgressHook,
           n_train: int | None) -> dict[str, Any]:
    from brightscan.train.config import TrainConfig
    from brightscan.train.staged import has_run, train_preset

    out = row / "models" / preset
    recipe = {"nmax": config.nmax, **({"batch_size": config.batch_size} if config.batch_size else {})}
    train = TrainConfig(preset=preset, epochs=config.epochs, seed=config.seed, precision=config.precision,
                        recipe=recipe)
    resume = has_run(out)  # a frozen_fusion interrupted in any of its stages resumes there

    def on_epoch(r: dict[str, Any]) -> None:
        hook.stage(f"n={size}: {preset} epoch {r['epoch'] + 1} (last val loss {r['val_loss']:.4f}, "
                   f"val AUC {r['val_auc']:.3f})", total=n_train)

    hook.stage(f"n={size}: training {preset}{' (resuming)' if resume else ''}", total=n_train)
    result = train_preset(train, row / "dataset", out, resume=resume, on_step=hook.advance,
                          on_epoch=on_epoch).result_
    keep = {k: v for k, v in dataclasses.asdict(result).items() if not isinstance(v, (list, dict))}
    return {**keep, "model_dir": str(out)}


def _train_settings(build_settings: dict[str, Any], preset: str, config: CurveConfig) -> dict[str, Any]:
    return {**build_settings, "preset": preset, "epochs": config.epochs, "batch_size": config.batch_size,
            "precision": config.precision}


def _continue_training(stages: StageRunner, preset: str, settings: dict[str, Any]) -> float:
    """A finished training stage asked for more epochs, all else the same, continues from its
    checkpoint: its marker and its evaluation's are removed, so both run again. Returns the wall
    seconds the training it continues took (0 when it does not), for the row's cost.

    Fewer epochs, an early-stopped run or any other change keeps the marker, and
    :class:`StageRunner` refuses the new settings.
    """
    stored = stages.done(f"train-{preset}")
    if stored is None:
        return 0.0
    before, result = stored.get("settings", {}), stored.get("result", {})
    wanted, ran = settings["epochs"], result.get("epochs_run")
    if (before == settings or {**before, "epochs": wanted} != settings or not isinstance(wanted, int)
            or not isinstance(ran, int) or wanted <= ran or result.get("stopped_early")):
        return 0.0
    from brightscan.train.staged import has_run

    if not has_run(stages.root / "models" / preset):
        return 0.0  # no checkpoint to continue from
    log.info("%s: %s trained %d epochs; continuing from its checkpoint to %d", stages.root, preset, ran, wanted)
    for kind in ("train", "evaluate"):
        stages.marker(f"{kind}-{preset}").unlink(missing_ok=True)
    return float(stored.get("seconds") or 0.0) + float(result.get("earlier_seconds") or 0.0)


def _evaluate(row: Path, size: int, preset: str, published: Path | None, hook: ProgressHook) -> dict[str, Any]:
    from brightscan.evaluate.report import evaluate

    hook.stage(f"n={size}: evaluating {preset} on the unthinned test split"
               + (" beside the published model" if published else ""), total=None)
    metrics = evaluate(row / "models" / preset, row / "dataset", out=row / "reports" / preset,
                       scanner_saves=row / "survey" / "scanner_saves.csv", compare=published)
    return {"metrics": str(row / "reports" / preset / "metrics.json"), "auc": metrics["alert"]["auc"]}


def _import_published(out: Path, config: CurveConfig, hook: ProgressHook) -> Path | None:
    if config.published is None:
        return None
    src = Path(config.published)
    if not src.exists():
        log.warning("published model %s is absent: the curve is reported without it", src)
        return None
    from brightscan.model import import_keras

    runner = StageRunner(out / PUBLISHED_DIR)
    hook.stage(f"importing the published model {src.name}", total=None)
    runner.run("import", {"src": str(src.resolve())},
               lambda: str(import_keras(src, out / PUBLISHED_DIR / "model", overwrite=True)))
    return out / PUBLISHED_DIR / "model"


def run_learning_curve(out_dir: str | Path, config: CurveConfig,
                       hook: ProgressHook | None = None) -> list[dict[str, Any]]:
    """Run (or resume) every stage of every row; write and return ``OUT/curve.json``'s rows.

    Parameters
    ----------
    out_dir : path
        Experiment folder; a second call with the same config re-uses every finished stage.
    config : CurveConfig
    hook : ProgressHook, optional
        Progress display.

    Returns
    -------
    list of dict
        One row per size and preset (see :func:`curve_rows`).
    """
    out, hook = Path(out_dir), hook or ProgressHook()
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        # On a shared machine, one thread per process avoids OpenMP threads spinning while
        # waiting for a sibling that is descheduled (measured: 10x more alerts per CPU-second).
        import torch

        torch.set_num_threads(config.threads)
    published = _import_published(out, config, hook)
    for size in sorted(int(n) for n in config.sizes):
        row = out / f"n{size}"
        stages = StageRunner(row)
        base = {"size": size, "nights": config.nights, "seed": config.seed}
        build_settings = {**base, "nmax": config.nmax, "fractions": list(config.fractions),
                          "stratify": config.stratify}
        earlier = {p: _continue_training(stages, p, _train_settings(build_settings, p, config))
                   for p in config.presets}
        alerts = row / "survey" / "alerts"
        pending = [f"{kind}-{p}" for p in config.presets for kind in ("train", "evaluate")
                   if stages.done(f"{kind}-{p}") is None]
        if pending and stages.done("dataset") is not None and not (row / "dataset" / "dataset.json").is_file():
            log.warning("%s: the dataset was deleted but %s need it; building it again", row, ", ".join(pending))
            stages.marker("dataset").unlink()
        if stages.done("dataset") is None and stages.done("simulate") is not None and not alerts.is_dir():
            log.warning("%s: the survey's alerts were deleted before a dataset was built; simulating again", row)
            stages.marker("simulate").unlink()
        sim = stages.run("simulate", base, lambda: _simulate(row, size, config, hook))
        built = stages.run("dataset", build_settings,
                           lambda: _build(row, size, config, hook, sim["result"]["n_alerts"]))
        if config.drop_alerts and alerts.is_dir():
            # later stages read the dataset, the labels and the scanners' saves, not the alerts
            log.info("%s: deleting the survey's alert files (--drop-alerts)", row)
            shutil.rmtree(alerts)
        n_train = (built["result"].get("train") or {}).get("alerts")
        for preset in config.presets:
            train_settings = _train_settings(build_settings, preset, config)
            stages.run(f"train-{preset}", train_settings,
                       lambda p=preset, e=earlier[preset]: {**_train(row, size, p, config, hook, n_train),
                                                            "earlier_seconds": round(e, 1)})
            stages.run(f"evaluate-{preset}", {**train_settings, "published": config.published},
                       lambda p=preset: _evaluate(row, size, p, published, hook))
        if config.drop_datasets and (row / "dataset").is_dir():
            log.info("%s: deleting the dataset, every preset is evaluated (--drop-datasets)", row)
            shutil.rmtree(row / "dataset")
        write_curve(out, config)
    return [r for r in curve_rows(out) if r["size"] in config.sizes and r["preset"] in config.presets]


def write_curve(out_dir: str | Path, config: CurveConfig) -> list[dict[str, Any]]:
    """Write ``curve.json``, ``curve.md`` (tables), ``curve.png`` (every preset) and
    ``curve-<preset>.png`` from the finished rows."""
    from brightscan.experiments.figures import cost_table, curve_table, plot_curve

    out, rows = Path(out_dir), curve_rows(out_dir)
    (out / "curve.json").write_text(json.dumps({"config": dataclasses.asdict(config), "rows": rows},
                                               indent=2, default=str) + "\n", encoding="utf-8")
    if rows:
        (out / "curve.md").write_text(curve_table(rows) + "\n" + cost_table(rows), encoding="utf-8")
        for preset in sorted({r["preset"] for r in rows}):
            plot_curve(rows, out / f"curve-{preset}.png", preset=preset)
        plot_curve(rows, out / "curve.png")  # every preset in one figure
    return rows


def curve_rows(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished row under ``out_dir`` (any size, any preset, whichever run made it):
    size, data, timings, memory and the headline metrics, sorted by size then preset."""
    from brightscan.experiments.summary import summarise_row

    out, rows = Path(out_dir), []
    sizes = sorted(int(p.name[1:]) for p in out.glob("n*") if p.is_dir() and p.name[1:].isdigit())
    for size in sizes:
        stages = StageRunner(out / f"n{size}")
        for marker in sorted(stages.marker_dir.glob("evaluate-*.json")):
            rows.append(summarise_row(stages, size, marker.stem.removeprefix("evaluate-")))
    return rows


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"900,2000,4000"`` → ``(900, 2000, 4000)``; ``ConfigError`` on anything else."""
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--sizes takes comma-separated integers, not {text!r}") from None
    if not sizes:
        raise ConfigError("--sizes is empty")
    return sizes


def split_names(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"a,b"`` → ``("a", "b")``."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(s.strip() for s in items if s.strip())

