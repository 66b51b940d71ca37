"""``brightscan experiment``: experiments that chain the pipeline (the learning curve)."""

from __future__ import annotations

from pathlib import Path

import typer

from brightscan.cli.common import console, handle_errors, make_progress

app = typer.Typer(help="Run experiments over the whole pipeline (resumable).", no_args_is_help=True)

#: Where the published model lives beside a checkout (skipped with a note when absent).
DEFAULT_PUBLISHED = "../shared/models/btsbot-published/v1.0.1"


@app.command("learning-curve")
def learning_curve(
    out: Path = typer.Option(..., "--out", "-o", help="Experiment folder; run again to resume."),
    sizes: str = typer.Option("900,2000,4000", "--sizes", help="Simulated sources per row, comma-separated."),
    presets: str = typer.Option("mi_cnn.icml2023", "--presets", help="Model presets, comma-separated."),
    nights: int = typer.Option(365, "--nights", min=1, help="Survey length in nights."),
    seed: int = typer.Option(0, "--seed", help="Seeds simulator, split and training."),
    epochs: int = typer.Option(None, "--epochs", min=1,
                               help="Cap on epochs (default: recipe, early stopping); raised on a later "
                                    "run, a finished training continues from its checkpoint."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Training batch (default: recipe's 16)."),
    precision: str = typer.Option("auto", "--precision", help="Training arithmetic: auto (bf16 only where native and measured faster), fp32 or bf16."),
    workers: int = typer.Option(2, "--workers", "-j", min=1, help="Simulator worker processes."),
    threads: int = typer.Option(None, "--threads", min=1, help="Torch threads (1 on a shared machine)."),
    published: str = typer.Option(DEFAULT_PUBLISHED, "--published",
                                  help="Published Keras model scored beside ours ('' to skip)."),
    drop_alerts: bool = typer.Option(
        False, "--drop-alerts",
        help="Delete each survey's alert files once its dataset is built (about 2 MB a source; "
             "a later dataset stage simulates again)."),
    drop_datasets: bool = typer.Option(
        False, "--drop-datasets",
        help="Delete each row's dataset once every preset is evaluated on it (about 1.4 MB a source; "
             "a later preset builds it again)."),
) -> None:
    """Simulate, build, train and evaluate at each size; the published model on the same test
    alerts; bootstrap intervals over sources. Writes OUT/curve.json; a re-run resumes."""
    from brightscan.experiments import CurveConfig, ProgressHook, run_learning_curve
    from brightscan.experiments.learning_curve import parse_sizes, split_names

    with handle_errors():
        if published and not Path(published).exists():
            console.print(f"[yellow]note:[/] {published} is absent: the published model is not compared")
        config = CurveConfig(sizes=parse_sizes(sizes), presets=split_names(presets), nights=nights, seed=seed,
                             epochs=epochs, batch_size=batch_size, precision=precision, workers=workers, threads=threads,
                             published=published or None, drop_alerts=drop_alerts,
                             drop_datasets=drop_datasets)
        with make_progress() as progress:
            task = progress.add_task("starting", total=None)

            class Bars(ProgressHook):
                def stage(self, text: str, total: int | None = None) -> None:
                    progress.reset(task, total=total, description=text)

                def advance(self, n: int = 1) -> None:
                    progress.advance(task, n)

            rows = run_learning_curve(out, config, Bars())
    for row in rows:
        ours, pol = row["ours"], row["ours"]["policies"].get("gt1", {})
        typer.echo(f"n={row['size']} {row['preset']}: test AUC {ours['auc']:.3f}, gt1 completeness "
                   f"{pol.get('completeness', float('nan')):.3f} purity {pol.get('purity', float('nan')):.3f}, "
                   f"{row['seconds']['total']:.0f} s")
    typer.echo(str(out / "curve.json"))


@app.command("ceiling")
def ceiling(
    dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="Dataset directory (brightscan dataset build)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for ceiling.json and scores.parquet."),
    features: str = typer.Option("", "--features",
                                 help="Comma-separated feature columns; 'issue' for magpsf,peakmag_so_far,age,ndethist "
                                      "(default: the dataset's feature set)."),
    scanner_saves: Path = typer.Option(None, "--scanner-saves", exists=True, dir_okay=False,
                                       help="scanner_saves.csv of the simulation (identification delays)."),
    nmax: int = typer.Option(60, "--nmax", min=1, help="Training N_max, as the networks' recipe."),
    seed: int = typer.Option(0, "--seed", help="random_state of the booster."),
    negative_weight: float = typer.Option(1.0, "--negative-weight",
                                          help="Multiply the negatives' weight by this, as train --negative-weight."),
) -> None:
    """Gradient boosting on the causal features alone (no images), trained on the same split and
    scored on the same test alerts as the networks: the floor a network must beat."""
    from brightscan.experiments.ceiling import ISSUE_FEATURES, CeilingConfig, run_ceiling
    from brightscan.experiments.learning_curve import split_names

    with handle_errors():
        names = ISSUE_FEATURES if features == "issue" else split_names(features)
        config = CeilingConfig(features=names, seed=seed, negative_weight=negative_weight)
        result = run_ceiling(dataset, out, config, scanner_saves=scanner_saves, nmax=nmax)
    gt1, (lo, hi) = result["policies"]["gt1"], result["alert"]["auc_ci"]
    plo, phi = gt1.get("purity_ci") or (float("nan"), float("nan"))
    typer.echo(f"ceiling ({len(result['model']['features'])} features): test AUC {result['alert']['auc']:.3f} "
               f"[{lo:.3f}, {hi:.3f}], gt1 completeness {gt1['completeness']:.3f} purity {gt1['purity']:.3f} "
               f"[{plo:.3f}, {phi:.3f}], faint dim-SN mean score {result['faint_dim_sn']['mean_score']:.3f}")
    typer.echo(str(out / "ceiling.json"))
