"""``brightscan evaluate``: per-alert and per-source evaluation of a model on a dataset split."""

from __future__ import annotations

from pathlib import Path

import typer

from brightscan.cli.common import handle_errors


def evaluate(
    model: Path = typer.Argument(..., help="Model directory (model.json + weights.safetensors)."),
    dataset: Path = typer.Argument(..., help="Dataset directory (dataset.json, val/ and the evaluated split)."),
    out: Path = typer.Option(..., "--out", "-o", help="Report directory: metrics.json, PNGs, index.html."),
    split: str = typer.Option("test", "--split", help="Split to evaluate (not val: policies are fitted there)."),
    scanner_saves: Path | None = typer.Option(
        None, "--scanner-saves", help="CSV objectId,save_jd of human scanner saves (for the delay)."
    ),
    compare: Path | None = typer.Option(None, "--compare", help="A second model directory, reported side by side."),
    calibrate: bool = typer.Option(
        False, "--calibrate", help="Fit a temperature on val and WRITE it into the model directory's model.json (and --compare's); says so."
    ),
    target_completeness: float = typer.Option(
        0.99, "--target-completeness", help="Policy search: minimum completeness on val."
    ),
) -> None:
    """Score a split (no N_max thinning), evaluate alerts and sources, write a self-contained report."""
    from brightscan.evaluate.report import EvaluateConfig
    from brightscan.evaluate.report import evaluate as run_evaluate

    config = EvaluateConfig(split=split, calibrate=calibrate, target_completeness=target_completeness)
    with handle_errors():
        result = run_evaluate(model, dataset, out=out, split=split, scanner_saves=scanner_saves,
                              compare=compare, calibrate=calibrate, config=config)
    alert = result["alert"]
    typer.echo(f"alerts: n={alert['n_alerts']} AUC={_f(alert['auc'])} accuracy={_f(alert['accuracy'])}")
    for name, m in result["policies"].items():
        typer.echo(f"{name}: completeness={_f(m['completeness'])} purity={_f(m['purity'])} "
                   f"n_sources={m['n_sources']} median_delay_days={_f(m['median_delay_days'])}")
    for name, section in [("", result), *([("compare ", result["compare"])] if "compare" in result else [])]:
        calibration = section["calibration"]
        if calibration.get("written_to"):
            typer.echo(f"{name}calibration: temperature {calibration['temperature_before']:.4f} -> "
                       f"{calibration['temperature']:.4f}, written to {calibration['written_to']}")
    typer.echo(f"optimised policy -> {Path(out) / 'policy.json'} (autoscan: --policy {Path(out) / 'policy.json'})")
    typer.echo(f"report -> {Path(out) / 'index.html'}")


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
