"""``brightscan train`` and ``brightscan tune``: fit a preset on a dataset, search its
hyperparameters."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from brightscan.cli.common import console, handle_errors, make_progress


def train(
    dataset: Path = typer.Argument(..., help="Dataset directory (brightscan dataset build)."),
    out: Path = typer.Option(..., "--out", "-o", help="Model directory to write (best model, metrics, checkpoint)."),
    preset: str = typer.Option(None, "--preset", help="Model preset, e.g. mi_cnn.icml2023 or mi_cnn.v1."),
    config: Path = typer.Option(None, "--config", help="TOML file with [train], [recipe], [model] tables."),
    epochs: int = typer.Option(None, "--epochs", help="Maximum epochs (default: the recipe's)."),
    seed: int = typer.Option(None, "--seed", help="Seed of weights, shuffling, augmentation, dropout."),
    precision: str = typer.Option(None, "--precision", help="fp32 or bf16 (autocast)."),
    compile_model: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    device: str = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda when present)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint."),
) -> None:
    """Train a model preset with its recipe; early stopping keeps the best model."""
    from brightscan.train import Trainer, load_train_config

    with handle_errors():
        cfg = load_train_config(config, preset=preset, epochs=epochs, seed=seed, precision=precision,
                                compile=compile_model, device=device)
        from brightscan.dataset.card import read_dataset_card

        # One bar per epoch over the training alerts (a step cap may end an epoch sooner).
        n_train = read_dataset_card(dataset).get("splits", {}).get("train", {}).get("alerts")
        with make_progress(transient=True) as progress:
            task = progress.add_task(f"training {cfg.preset}, epoch 1", total=n_train)

            def on_epoch(row: dict) -> None:
                progress.reset(task, total=n_train, description=(
                    f"epoch {row['epoch'] + 1} (last: val loss {row['val_loss']:.4f}, "
                    f"val AUC {row['val_auc']:.3f})"))

            result = Trainer(cfg).fit(dataset, out, resume=resume, on_epoch=on_epoch,
                                      on_step=lambda n: progress.advance(task, n)).result_
    console.print(f"best epoch {result.best_epoch}: val loss {result.best_val_loss:.4f}, "
                  f"val AUC {result.best_val_auc:.4f} ({result.epochs_run} epochs"
                  f"{', stopped early' if result.stopped_early else ''})")
    typer.echo(str(result.model_dir))


def tune(
    dataset: Path = typer.Argument(..., help="Dataset directory, built with the largest N_max to search."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for trials, trials.csv, best.toml, best.json."),
    trials: int = typer.Option(20, "--trials", help="Number of Optuna trials."),
    preset: str = typer.Option(None, "--preset", help="Model preset to tune."),
    config: Path = typer.Option(None, "--config", help="Base TOML config (the searched fields override it)."),
    epochs: int = typer.Option(None, "--epochs", help="Maximum epochs per trial."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler."),
) -> None:
    """Search learning rate, batch size, dropouts, N_max and feature set (Optuna TPE + pruning)."""
    from brightscan.train import load_train_config
    from brightscan.train.search import SearchConfig, tune as run_tune

    with handle_errors():
        base = load_train_config(config, preset=preset, epochs=epochs)
        summary = run_tune(dataset, out, base, SearchConfig(trials=trials, seed=seed))
    console.print(f"best trial {summary['best_trial']}: val loss {summary['best_value']:.4f}; "
                  f"retrain with: brightscan train {dataset} --config {out / 'best.toml'} --out MODEL")
    typer.echo(json.dumps(summary["best_params"]))
