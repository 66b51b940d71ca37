"""``brightscan demo``: the whole system on built-in simulated data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import typer
from rich.progress import Progress, TaskID

from brightscan.cli.common import JSON_OPTION, QUIET_OPTION, Output, handle_errors

#: Measured on the 2-core development machine (see README); keep in step with DEMO_SIZES.
DEMO_TIMES = {"tiny": "about 1 minute", "small": "about 7 minutes", "paper": "hours"}


class _RichTracker:
    """The demo's stages as progress bars: each stage gets one, the previous one is completed."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.current: TaskID | None = None

    def __call__(self, description: str, total: int | None) -> Callable[..., None]:
        self.finish()
        task = self.progress.add_task(description, total=total)
        self.current = task

        def advance(n: int = 1, description: str | None = None) -> None:
            self.progress.update(task, advance=n, description=description)

        return advance

    def finish(self) -> None:
        """Mark the running stage complete (early stopping or an unknown total end it sooner)."""
        if self.current is not None:
            done = self.progress.tasks[-1].completed
            self.progress.update(self.current, total=done or 1, completed=done or 1)


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Output directory (a previous demo there is replaced)."),
    size: Literal["tiny", "small", "paper"] = typer.Option(
        "small", "--size",
        help=f"tiny ({DEMO_TIMES['tiny']}, for CI), small ({DEMO_TIMES['small']} on 2 cores), "
             "or paper (14,000 sources; hours)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the simulator, split, training and replay."),
    survey: Literal["ztf", "rubin"] = typer.Option(
        "ztf", "--survey", help="ztf, or rubin (simulated Rubin alerts, BTSbot 2 mm_cnn.rubin at 48 px; docs/rubin.md)."),
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Simulate a survey season, train mi_cnn.icml2023, evaluate it like the paper, replay the
    last night through autoscan, and print a summary with the path of the HTML report."""
    from brightscan.demo import run_demo

    show = Output(quiet, as_json)
    with handle_errors(), show.progress() as progress:
        tracker = _RichTracker(progress)
        summary = run_demo(out, size=size, seed=seed, track=tracker, survey=survey)
        tracker.finish()
    show.result(_summary_text(out, summary), summary)


def _summary_text(out: Path, summary: dict) -> str:
    survey, ev, scan = summary["survey"], summary["evaluation"], summary["autoscan"]
    alert = ev["alert"]
    lines = [
        f"survey: {survey['n_sources']} sources, {survey['n_alerts']} alerts, "
        f"{survey['n_positive_sources']} bright transients",
        f"model: {summary.get('preset', 'mi_cnn.icml2023')}, best epoch {summary['training']['best_epoch']}, "
        f"val AUC {summary['training']['best_val_auc']:.3f}",
        f"test alerts: AUC {_num(alert['auc'])}, accuracy {_num(alert['accuracy'])}, "
        f"precision {_num(alert['precision'])}, recall {_num(alert['recall'])} (n={alert['n_alerts']})",
    ]
    for name, pol in ev["policies"].items():
        delay = pol.get("median_delay_days")
        delay_text = "n/a" if delay is None else f"{delay:+.2f} d vs scanners"
        lines.append(f"policy {name}: completeness {_num(pol['completeness'])}, purity {_num(pol['purity'])}, "
                     f"median delay {delay_text} ({pol['n_sources']} sources)")
    lines.append(f"autoscan replay of night {scan['night']}: {scan['alerts_scored']} alerts scored, "
                 f"{scan['sources_passed']} sources passed, {scan['actions_done']} actions logged "
                 f"({scan['actions_log']}); night summary {scan['night_summary']}")
    if (outcomes := scan.get("outcomes")) is not None:
        lines.append(f"outcomes of night {scan['night']} against the simulated BTS classifications: purity "
                     f"{_ci(outcomes, 'purity')} of {outcomes['n_saved']} saves ({outcomes['n_saved_unclassified']} "
                     f"not classified yet), completeness {_ci(outcomes, 'completeness')} "
                     f"({outcomes['n_missed']} of {outcomes['n_bright']} bright missed); page {outcomes['page']}")
    total = sum(summary["timings_s"].values())
    lines.append(f"timings (s): {', '.join(f'{k} {v}' for k, v in summary['timings_s'].items())}; "
                 f"total {total:.0f} s")
    lines.append(f"report: {(out / summary['report'] / 'index.html').resolve()}")
    return "\n".join(lines)


def _ci(values: dict, key: str) -> str:
    lo, hi = values[f"{key}_ci"]
    return f"{_num(values[key])} [{_num(lo)}, {_num(hi)}]"


def _num(value: float | None) -> str:
    # precision and purity are undefined (None) when nothing was flagged: a tiny run can do that
    return "n/a" if value is None else f"{value:.3f}"
