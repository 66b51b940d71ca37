"""``brightscan demo``: the whole system on built-in simulated data."""

from __future__ import annotations

from pathlib import Path

import typer

from brightscan.cli.common import console, handle_errors


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Output directory (a previous demo there is replaced)."),
    size: str = typer.Option("small", "--size", help="tiny (CI, ~2 min), small (<= 10 min) or paper (14,000 sources; hours)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the simulator, split, training and replay."),
) -> None:
    """Simulate a survey season, train mi_cnn.icml2023, evaluate it like the paper, replay the
    last night through autoscan, and print a summary with the path of the HTML report."""
    from brightscan.demo import run_demo

    with handle_errors():
        summary = run_demo(out, size=size, seed=seed, stage=lambda text: console.print(f"[bold cyan]>>[/] {text}"))
    _print_summary(out, summary)


def _print_summary(out: Path, summary: dict) -> None:
    survey, ev, scan = summary["survey"], summary["evaluation"], summary["autoscan"]
    alert = ev["alert"]
    lines = [
        f"survey: {survey['n_sources']} sources, {survey['n_alerts']} alerts, "
        f"{survey['n_positive_sources']} bright transients",
        f"model: mi_cnn.icml2023, best epoch {summary['training']['best_epoch']}, "
        f"val AUC {summary['training']['best_val_auc']:.3f}",
        f"test alerts: AUC {alert['auc']:.3f}, accuracy {alert['accuracy']:.3f}, "
        f"precision {alert['precision']:.3f}, recall {alert['recall']:.3f} (n={alert['n_alerts']})",
    ]
    for name, pol in ev["policies"].items():
        delay = pol.get("median_delay_days")
        delay_text = "n/a" if delay is None else f"{delay:+.2f} d vs scanners"
        lines.append(f"policy {name}: completeness {pol['completeness']:.3f}, purity {pol['purity']:.3f}, "
                     f"median delay {delay_text} ({pol['n_sources']} sources)")
    lines.append(f"autoscan replay of night {scan['night']}: {scan['alerts_scored']} alerts scored, "
                 f"{scan['sources_passed']} sources passed, {scan['actions_done']} actions logged "
                 f"({scan['actions_log']}); night summary {scan['night_summary']}")
    lines.append("timings (s): " + ", ".join(f"{k} {v}" for k, v in summary["timings_s"].items()))
    lines.append(f"report: {(out / summary['report'] / 'index.html').resolve()}")
    typer.echo("\n".join(lines))
