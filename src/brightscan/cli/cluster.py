"""``--cluster``, ``--cluster-config`` and ``--resume``, shared by ``score``, ``preprocess`` and
``dataset build``: run a job over partitions with a Rich progress bar, printing the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from brightscan.cli.common import console, make_progress

CLUSTER_HELP = ("Run on dask: local[:N] (N worker processes here), tcp://HOST:PORT (a running scheduler), "
                "slurm or pbs (dask-jobqueue, set up in --cluster-config). Output: a partitioned "
                "Parquet dataset in --out, one file per input file or night.")

cluster_option = typer.Option(None, "--cluster", help=CLUSTER_HELP)
cluster_config_option = typer.Option(
    None, "--cluster-config", help="TOML file with [cluster.slurm] / [cluster.pbs] (queue, cores, memory, walltime, jobs).")
resume_option = typer.Option(
    False, "--resume", help="Continue a partitioned run in --out (finished partitions are skipped; a plain "
    "rerun skips them too, --resume also fails when there is nothing to resume).")


def run_job(job: Any, inputs: list[Path], out: Path, cluster: str | None, config: Path | None,
            resume: bool) -> Any:
    """Run ``job`` over the partitions of ``inputs`` into ``out``: on ``cluster``, or in this
    process when it is None; returns the :class:`~brightscan.distributed.RunSummary`."""
    from brightscan.distributed import run_partitioned
    from brightscan.errors import ConfigError

    try:
        job.check_partitioned()
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None

    def run(client: Any, threads: int | None, **progress: Any) -> Any:
        return run_partitioned(job, inputs, out, client=client, model_threads=threads, resume=resume, **progress)

    return run_with_cluster(run, cluster, config)


def run_with_cluster(run: Any, cluster: str | None, config: Path | None) -> Any:
    """Call ``run(client, model_threads, on_start=..., on_done=...)`` with a Rich progress bar over
    partitions, on ``cluster`` (printing its dashboard), or in this process when it is None."""
    from brightscan.distributed import open_client, parse_cluster
    from brightscan.distributed.cluster import read_config

    with make_progress() as progress:
        task = progress.add_task("partitions", total=None)

        def on_start(todo: int, skipped: int) -> None:
            progress.update(task, total=todo)
            if skipped:
                console.print(f"{skipped} partition(s) already finished: skipped")

        hooks = {"on_start": on_start, "on_done": lambda row: progress.advance(task)}
        if cluster is None:
            return run(None, None, **hooks)
        spec = parse_cluster(cluster)
        with open_client(spec, read_config(config)) as (client, threads):
            console.print(f"dask dashboard: {client.dashboard_link} ({spec.kind}; "
                          f"{threads} model thread(s) per worker)")
            return run(client, threads, **hooks)


def echo_summary(summary: Any, what: str) -> None:
    """One line: partitions done and skipped, rows, rejections, where."""
    typer.echo(f"{what} {summary.rows} alerts in {len(summary.done)} partition(s) "
               f"({summary.skipped} already finished), rejected {summary.rejections} -> {summary.root}")
