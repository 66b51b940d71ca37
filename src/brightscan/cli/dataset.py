"""``brightscan dataset``: build a training set from labelled alerts, import the original
BTSbot layout, describe a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from brightscan.cli.common import (
    JSON_OPTION,
    OVERFLOW_OPTION,
    QUIET_OPTION,
    TYPER_SETTINGS,
    FeatureSetName,
    Output,
    OutputGuard,
    OverflowMode,
    StratifyMode,
    ThinningMode,
    console,
    handle_errors,
)
from brightscan.errors import BrightscanError
from brightscan.cli.cluster import cluster_config_option, cluster_option, resume_option

app = typer.Typer(help="Build, import and inspect training datasets.", **TYPER_SETTINGS)


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"--split takes three comma-separated numbers, not {text!r}") from None
    if len(values) != 3:
        raise typer.BadParameter("--split takes three numbers: train,val,test")
    return values  # type: ignore[return-value]


def _print_card(card: dict, show: Output | None = None) -> None:
    if show is not None and show.silent:
        return
    table = Table("split", "alerts", "positives", "negatives", "sources", title=f"feature set {card['feature_set']}, "
                  f"N_max {card.get('nmax')}")
    for split, info in card["splits"].items():
        per = info.get("alerts_per_label", {})
        table.add_row(split, str(info.get("alerts")), str(per.get("1", "?")), str(per.get("0", "?")),
                      str(info.get("sources", "?")))
    console.print(table)
    if card.get("skipped"):
        console.print("skipped: " + ", ".join(f"{k} {v}" for k, v in card["skipped"].items()))


@app.command("build")
def build(
    inputs: list[str] = typer.Argument(
        ..., help="Alert files (.avro, .parquet, .tar, .tar.gz), directories, glob patterns or URLs (s3://, https://, ...).",
    ),
    labels: Path = typer.Option(..., "--labels", exists=True, dir_okay=False,
                                help="CSV with objectId, label (0/1) and optional class."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset directory to write."),
    nmax: int = typer.Option(60, "--nmax", min=0, help="Alerts kept per training source (0: keep all)."),
    thinning: ThinningMode = typer.Option(
        "btsbot", "--thinning",
        help="N_max rule: btsbot (seeded random N_max; the latest for AGN, CVs, variable stars, bogus) or latest."),
    split: str = typer.Option("0.81,0.09,0.10", "--split", help="Source fractions train,val,test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the source split."),
    stratify: StratifyMode = typer.Option(
        "class", "--stratify",
        help="Stratify the split by label and class (the labels' class column), or by label only."),
    features: FeatureSetName = typer.Option("v1", "--features", help="Stored feature set (v1 also holds icml2023's; rubin_v1 for Rubin alerts)."),
    overflow: OverflowMode = OVERFLOW_OPTION,
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
    cluster: str = cluster_option,
    cluster_config: Path = cluster_config_option,
    resume: bool = resume_option,
) -> None:
    """Build DS/{train,val,test}/{triplets.npy,alerts.parquet} and DS/dataset.json."""
    from brightscan.alerts import count_alerts
    from brightscan.dataset import BuildConfig, build_dataset

    fractions = _fractions(split)
    show = Output(quiet, as_json)
    guard = OutputGuard(out)
    with handle_errors(cleanup=guard.remove_new):
        config = BuildConfig(nmax=nmax or None, fractions=fractions, seed=seed, feature_set=features,
                             overflow=overflow, stratify=stratify, thinning=thinning)
        if cluster is not None or resume:
            card = _build_partitioned(inputs, labels, out, config, cluster, cluster_config, resume)
            _print_card(card, show)
            show.result(str(out), {"out": str(out), "card": card})
            return
        with show.progress() as progress:
            # the first pass (each source's history) is not counted; the second is, alert by alert
            task = progress.add_task("building the dataset", total=count_alerts(inputs))
            card = build_dataset(inputs, labels, out, config, on_item=lambda: progress.advance(task))
        if not sum(int(info.get("alerts") or 0) for info in card.get("splits", {}).values()):
            raise BrightscanError(f"no alert of {len(inputs)} input(s) belongs to a source labelled in {labels}"
                             f" (skipped: {card.get('skipped') or 'none'}); nothing written")
    _print_card(card, show)
    show.result(str(out), {"out": str(out), "card": card})


def _build_partitioned(inputs: list[Path], labels: Path, out: Path, config: object, cluster: str | None,
                       cluster_config: Path | None, resume: bool) -> dict:
    from brightscan.cli.cluster import run_with_cluster
    from brightscan.distributed.dataset import build_dataset_partitioned

    def build(client: object, threads: int | None, **progress: object) -> dict:
        return build_dataset_partitioned(inputs, labels, out, config, client=client, resume=resume, **progress)

    return run_with_cluster(build, cluster, cluster_config)


@app.command("import-btsbot")
def import_btsbot_cmd(
    directory: Path = typer.Argument(..., help="Folder with {split}_cand_{version}_N{N}.csv and .npy files."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset directory to write."),
    version: str = typer.Option(None, "--version", help="Which version when the folder holds several."),
) -> None:
    """Import a training set in the original BTSbot team's layout."""
    from brightscan.dataset import import_btsbot

    with handle_errors():
        card = import_btsbot(directory, out, version=version)
    _print_card(card)
    typer.echo(str(out))


@app.command("info")
def info(
    dataset: Path = typer.Argument(..., help="A dataset directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole card as JSON."),
) -> None:
    """Describe a dataset: counts per split and class, N_max, features, inputs."""
    from brightscan.dataset import read_dataset_card

    with handle_errors():
        card = read_dataset_card(dataset)
    if as_json:
        typer.echo(json.dumps(card, indent=2))
    else:
        _print_card(card)
