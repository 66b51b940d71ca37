"""``brightscan preprocess``: alerts → triplets, features and rejection records on disk."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from brightscan.cli.cluster import (
    cluster_config_option, cluster_option, echo_summary, resume_option, run_job,
)
from brightscan.cli.common import console, handle_errors, make_progress


def preprocess(
    inputs: list[Path] = typer.Argument(..., help="Alert files (.avro, .parquet, .tar, .tar.gz) or directories."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    features: str = typer.Option("v1", "--features", help="Feature set: v1 (25) or icml2023 (14)."),
    causal: bool = typer.Option(
        False, "--causal/--production-history",
        help="Merge the source's earlier alerts in the input into the history (never later ones).",
    ),
    overflow: str = typer.Option(
        "reject", "--overflow", help="Cutouts with float32 overflow sentinels: reject, or 'production' (zero the channel)."
    ),
    cluster: str = cluster_option,
    cluster_config: Path = cluster_config_option,
    resume: bool = resume_option,
) -> None:
    """Turn alerts into 63x63x3 triplets and features exactly as the ZTF broker does."""
    from brightscan.preprocess import FEATURE_SETS, OVERFLOW_MODES
    from brightscan.preprocess.batch import preprocess_to_dir

    if features not in FEATURE_SETS:
        raise typer.BadParameter(f"unknown feature set {features!r}; choose from {', '.join(FEATURE_SETS)}")
    if overflow not in OVERFLOW_MODES:
        raise typer.BadParameter(f"--overflow must be one of {', '.join(OVERFLOW_MODES)}")
    if cluster is not None or resume:
        if causal:
            raise typer.BadParameter("--causal is not available with --cluster (each partition uses its "
                                     "packets' own history)")
        from brightscan.distributed import PreprocessJob

        with handle_errors():
            run = run_job(PreprocessJob(features, overflow), inputs, out, cluster, cluster_config, resume)
        echo_summary(run, "prepared")
        return
    with handle_errors(), make_progress() as progress:
        task = progress.add_task("preprocessing", total=None)
        summary = preprocess_to_dir(
            inputs, out, features, overflow=overflow, causal=causal,
            on_item=lambda: progress.advance(task),
        )
    typer.echo(f"accepted {summary.accepted}, rejected {summary.n_rejected} -> {summary.out_dir}")
    if summary.rejected:
        table = Table("stage", "reason", "alerts", title="rejections")
        for (stage, reason), count in summary.rejected.most_common():
            table.add_row(stage, reason, str(count))
        console.print(table)
