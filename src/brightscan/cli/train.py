"""``brightscan train`` and ``brightscan tune``: fit a preset on a dataset, search its
hyperparameters."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from brightscan.cli.common import JSON_OPTION, QUIET_OPTION, ClassWeightUnit, Output, Precision, handle_errors

_CONFIG_HELP = "TOML file with [train], [recipe] and [model] tables."


def train(
    dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="Dataset directory (brightscan dataset build)."),
    out: Path = typer.Option(..., "--out", "-o", help="Model directory to write (best model, metrics, checkpoint)."),
    preset: str = typer.Option(None, "--preset", help="Model preset, e.g. mi_cnn.icml2023 or mi_cnn.v1."),
    config: Path = typer.Option(None, "--config", "-c", exists=True, dir_okay=False, help=_CONFIG_HELP),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Maximum epochs (default: the recipe's)."),
    seed: int = typer.Option(None, "--seed", help="Seed of weights, shuffling, augmentation, dropout."),
    precision: Precision = typer.Option(None, "--precision", help="Training precision: auto (bf16 only where native and measured faster), fp32, or bf16 (autocast)."),
    compile_model: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    class_weights: ClassWeightUnit = typer.Option(
        None, "--class-weights", help="Balance the classes over alerts (the recipe's default) or over objects."),
    negative_weight: float = typer.Option(
        None, "--negative-weight",
        help="Multiply the negative class's loss weight by this after balancing (default 1): the model "
        "then scores 0.5 where a balanced one scores w / (1 + w), gt1's operating point."),
    device: str = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda when present)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint."),
    init_weights: Path = typer.Option(None, "--init-weights", exists=True, dir_okay=False,
                                      help="Start the backbone from a local timm / Hugging Face checkpoint "
                                      "(.safetensors, or .bin/.pth read with weights_only=True)."),
    image_model: Path = typer.Option(None, "--image-model", exists=True, file_okay=False,
                                     help="frozen_fusion: a trained image model to use instead of training it."),
    metadata_model: Path = typer.Option(None, "--metadata-model", exists=True, file_okay=False,
                                        help="frozen_fusion: a trained um_nn to use instead of training it."),
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Train a model preset with its recipe; early stopping keeps the best model.

    A frozen_fusion preset trains in btsbot 2's three stages (image model, metadata model, then
    the head with both frozen), under OUT/stages/ and OUT."""
    from brightscan.dataset.card import read_dataset_card
    from brightscan.train import load_train_config
    from brightscan.train.staged import train_preset

    show = Output(quiet, as_json)
    with handle_errors():
        cfg = load_train_config(config, preset=preset, epochs=epochs, seed=seed, precision=precision,
                                compile=compile_model, device=device,
                                init_weights=None if init_weights is None else str(init_weights))
        options = {"class_weight_unit": class_weights, "negative_weight": negative_weight}
        chosen = {key: value for key, value in options.items() if value is not None}
        if chosen:  # the options win over the config file's [recipe] table
            cfg = replace(cfg, recipe={**cfg.recipe, **chosen})
        n_train = int(read_dataset_card(dataset).get("splits", {}).get("train", {}).get("alerts") or 0)
        max_epochs, per_epoch = cfg.schedule(n_train)
        # one bar over every epoch's training alerts, so the ETA covers the whole run
        with show.progress() as progress:
            task = progress.add_task(f"training {cfg.preset}: epoch 1 of {max_epochs}",
                                     total=max_epochs * per_epoch or None)

            def on_epoch(row: dict) -> None:
                done = row["epoch"]
                progress.update(task, completed=done * per_epoch, description=(
                    f"training {cfg.preset}: epoch {min(done + 1, max_epochs)} of {max_epochs} "
                    f"(last: val loss {row['val_loss']:.4f}, val AUC {row['val_auc']:.3f})"))

            hooks = {"on_epoch": on_epoch, "on_step": lambda n: progress.advance(task, n)}
            trainer = train_preset(cfg, dataset, out, resume=resume, image_model=image_model,
                                   metadata_model=metadata_model, **hooks)
            result = trainer.result_
            progress.update(task, total=progress.tasks[0].completed)  # early stopping ends it sooner
    show.info(f"best epoch {result.best_epoch}: val loss {result.best_val_loss:.4f}, "
              f"val AUC {result.best_val_auc:.4f} ({result.epochs_run} of at most {max_epochs} epochs"
              f"{', stopped early' if result.stopped_early else ''})")
    show.result(str(result.model_dir), {
        "model_dir": str(result.model_dir), "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss, "best_val_auc": result.best_val_auc,
        "epochs_run": result.epochs_run, "stopped_early": result.stopped_early})


def tune(
    dataset: Path = typer.Argument(..., exists=True, file_okay=False,
                                   help="Dataset directory, built with the largest N_max to search."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for trials, trials.csv, best.toml, best.json."),
    trials: int = typer.Option(20, "--trials", min=1, help="Number of Optuna trials."),
    preset: str = typer.Option(None, "--preset", help="Model preset to tune."),
    config: Path = typer.Option(None, "--config", "-c", exists=True, dir_okay=False,
                                help="Base TOML config (the searched fields override it)."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Maximum epochs per trial."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler."),
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Search learning rate, batch size, dropouts, N_max and feature set (Optuna TPE + pruning)."""
    import json

    from brightscan.train import load_train_config
    from brightscan.train.search import SearchConfig, tune as run_tune

    show = Output(quiet, as_json)
    with handle_errors():
        base = load_train_config(config, preset=preset, epochs=epochs)
        summary = run_tune(dataset, out, base, SearchConfig(trials=trials, seed=seed))
    show.info(f"best trial {summary['best_trial']}: val loss {summary['best_value']:.4f}; "
              f"retrain with: brightscan train {dataset} --config {out / 'best.toml'} --out MODEL")
    show.result(json.dumps(summary["best_params"]), summary)
