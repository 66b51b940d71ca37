"""``brightscan evaluate``: per-alert and per-source evaluation of a model on a dataset split."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from brightscan.cli.common import JSON_OPTION, QUIET_OPTION, Output, OutputGuard, handle_errors


def evaluate(
    model: Path = typer.Argument(..., exists=True, file_okay=False, help="Model directory (model.json + weights.safetensors)."),
    dataset: Path = typer.Argument(..., exists=True, file_okay=False,
                                   help="Dataset directory (dataset.json, val/ and the evaluated split)."),
    out: Path = typer.Option(..., "--out", "-o", help="Report directory: metrics.json, PNGs, index.html."),
    split: str = typer.Option("test", "--split", help="Split to evaluate (not val: policies are fitted there)."),
    scanner_saves: Path | None = typer.Option(
        None, "--scanner-saves", exists=True, dir_okay=False, help="CSV objectId,save_jd of human scanner saves (for the delay)."
    ),
    compare: Path | None = typer.Option(None, "--compare", exists=True, file_okay=False,
                                        help="A second model directory, reported side by side."),
    calibrate: bool = typer.Option(
        False, "--calibrate",
        help="Fit a temperature on val; the report uses it and writes the calibrated model as a new version to "
             "OUT/calibrated-model (and OUT/calibrated-compare); the models read are never changed."
    ),
    operating_point: bool = typer.Option(
        False, "--operating-point",
        help="Write OUT/operating-point-model (and OUT/operating-point-compare): the model (calibrated, with "
             "--calibrate) with its score 0.5 moved to gt1's operating point on val, the highest threshold at which "
             "gt1 keeps --target-completeness of val's bright sources; its ranking is unchanged and its gt1 at 0.5 is "
             "the report's gt1 at that threshold."
    ),
    target_completeness: float = typer.Option(
        0.99, "--target-completeness", min=0, max=1, help="Policy search: minimum completeness on val."
    ),
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Score a split (no N_max thinning), evaluate alerts and sources, write a self-contained report."""
    from brightscan.dataset.card import read_dataset_card
    from brightscan.evaluate.report import EvaluateConfig
    from brightscan.evaluate.report import evaluate as run_evaluate

    show = Output(quiet, as_json)
    config = EvaluateConfig(split=split, calibrate=calibrate, operating_point=operating_point,
                            target_completeness=target_completeness)
    guard = OutputGuard(out)
    with handle_errors(cleanup=guard.remove_new):
        splits = read_dataset_card(dataset).get("splits", {})
        total = sum(int((splits.get(s) or {}).get("alerts") or 0) for s in ("val", split)) * (2 if compare else 1)
        with show.progress() as progress:
            task = progress.add_task("scoring the val and evaluated splits", total=total or None)
            result = run_evaluate(model, dataset, out=out, split=split, scanner_saves=scanner_saves,
                                  compare=compare, calibrate=calibrate, config=config,
                                  progress=lambda n: progress.advance(task, n),
                                  command=shlex.join(["brightscan", *sys.argv[1:]]))
    alert = result["alert"]
    lines = [f"alerts: n={alert['n_alerts']} AUC={_f(alert['auc'])} accuracy={_f(alert['accuracy'])}"]
    for name, m in result["policies"].items():
        lines.append(f"{name}: completeness={_f(m['completeness'])} purity={_f(m['purity'])} "
                     f"n_sources={m['n_sources']} median_delay_days={_f(m['median_delay_days'])}")
    for name, section in [("", result), *([("compare ", result["compare"])] if "compare" in result else [])]:
        calibration = section["calibration"]
        if calibration.get("written_to"):
            lines.append(f"{name}calibration: temperature {calibration['temperature_before']:.4f} -> "
                         f"{calibration['temperature']:.4f}, written to {calibration['written_to']}")
        lines.extend(_operating_point_lines(name, section.get("gt1_operating_point") or {}, split))
    lines.append(f"optimised policy -> {Path(out) / 'policy.json'} (autoscan: --policy {Path(out) / 'policy.json'})")
    lines.append(f"report -> {Path(out) / 'index.html'}")
    show.result("\n".join(lines), {k: result[k] for k in ("model", "alert", "policies", "calibration", "gt1_operating_point")}
                | {"report": str(Path(out) / "index.html"), "policy": str(Path(out) / "policy.json")})


def _operating_point_lines(name: str, point: dict, split: str) -> list[str]:
    """What the report found of gt1's operating point on val (nothing when val has none)."""
    if point.get("threshold") is None:
        return []
    on_test, written = point["on_test"], point.get("written_to")
    found = (f"{name}gt1 on val keeps {point['target_completeness']:.0%} of bright sources up to threshold "
             f"{point['threshold']:.2f} (purity {_f(point['purity'])}); train --negative-weight "
             f"{point['negative_weight']:.3g} would move a retrained model's 0.5 there")
    on_split = (f"{name}gt1 at {point['threshold']:.2f} on {split}: completeness={_f(on_test['completeness'])} "
                f"purity={_f(on_test['purity'])} median_delay_days={_f(on_test['median_delay_days'])}")
    return [found, on_split + (f", model with its 0.5 there written to {written}" if written else "")]


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
