"""``brightscan dataset``: build a training set from labelled alerts, import the original
BTSbot layout, describe a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from brightscan.cli.cluster import cluster_config_option, cluster_option, resume_option
from brightscan.cli.common import console, handle_errors, make_progress

app = typer.Typer(help="Build, import and inspect training datasets.", no_args_is_help=True)


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"--split takes three comma-separated numbers, not {text!r}") from None
    if len(values) != 3:
        raise typer.BadParameter("--split takes three numbers: train,val,test")
    return values  # type: ignore[return-value]


def _print_card(card: dict) -> None:
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
    inputs: list[Path] = typer.Argument(..., help="Alert files (.avro, .parquet, .tar[.gz]) or directories."),
    labels: Path = typer.Option(..., "--labels", help="CSV with objectId, label (0/1) and optional class."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset directory to write."),
    nmax: int = typer.Option(60, "--nmax", help="Latest alerts kept per training source (0: keep all)."),
    split: str = typer.Option("0.81,0.09,0.10", "--split", help="Source fractions train,val,test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the source split."),
    features: str = typer.Option("v1", "--features", help="Stored feature set (v1 also holds icml2023)."),
    overflow: str = typer.Option("reject", "--overflow", help="Overflowing cutouts: reject or production."),
    cluster: str = cluster_option,
    cluster_config: Path = cluster_config_option,
    resume: bool = resume_option,
) -> None:
    """Build DS/{train,val,test}/{triplets.npy,alerts.parquet} and DS/dataset.json."""
    from brightscan.dataset import BuildConfig, build_dataset

    fractions = _fractions(split)
    with handle_errors():
        config = BuildConfig(nmax=nmax or None, fractions=fractions, seed=seed, feature_set=features,
                             overflow=overflow)
        if cluster is not None or resume:
            card = _build_partitioned(inputs, labels, out, config, cluster, cluster_config, resume)
            _print_card(card)
            typer.echo(str(out))
            return
        with make_progress() as progress:
            task = progress.add_task("building", total=None)
            card = build_dataset(inputs, labels, out, config, on_item=lambda: progress.advance(task))
    _print_card(card)
    typer.echo(str(out))


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
