"""``brightscan preprocess``: alerts → triplets, features and rejection records on disk."""

from __future__ import annotations

from pathlib import Path

import typer

from brightscan.cli.common import (
    JSON_OPTION,
    OVERFLOW_OPTION,
    QUIET_OPTION,
    READ_LIMIT_OPTION,
    FeatureSetName,
    OutputGuard,
    Output,
    OverflowMode,
    handle_errors,
    read_limits,
    rejection_table,
)
from brightscan.errors import BrightscanError
from brightscan.cli.cluster import cluster_config_option, cluster_option, echo_summary, resume_option, run_job


def preprocess(
    inputs: list[str] = typer.Argument(
        ..., help="Alert files (.avro, .parquet, .tar, .tar.gz), directories, glob patterns or URLs (s3://, https://, ...).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    features: FeatureSetName = typer.Option("v1", "--features", help="Feature set: v1 (25) or icml2023 (14)."),
    causal: bool = typer.Option(
        False, "--causal/--production-history",
        help="Merge the source's earlier alerts in the input into the history (never later ones).",
    ),
    overflow: OverflowMode = OVERFLOW_OPTION,
    read_limit: list[str] = READ_LIMIT_OPTION,
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
    cluster: str = cluster_option,
    cluster_config: Path = cluster_config_option,
    resume: bool = resume_option,
) -> None:
    """Turn alerts into 63x63x3 triplets and features exactly as the ZTF broker does."""
    from brightscan.alerts import count_alerts
    from brightscan.preprocess.batch import preprocess_to_dir

    limits = read_limits(read_limit)
    if read_limit and (cluster is not None or resume):
        raise typer.BadParameter("--read-limit is not available with --cluster (workers use the defaults)")
    if cluster is not None or resume:
        if causal:
            raise typer.BadParameter("--causal is not available with --cluster (each partition uses its "
                                     "packets' own history)")
        from brightscan.distributed import PreprocessJob

        with handle_errors():
            run = run_job(PreprocessJob(features, overflow), inputs, out, cluster, cluster_config, resume)
        echo_summary(run, "prepared")
        return
    show = Output(quiet, as_json)
    guard = OutputGuard(out)
    with handle_errors(cleanup=guard.remove_new), show.progress() as progress:
        task = progress.add_task("preprocessing alerts", total=count_alerts(inputs))
        summary = preprocess_to_dir(
            inputs, out, features, overflow=overflow, causal=causal, limits=limits,
            on_item=lambda: progress.advance(task),
        )
        progress.stop()
        if summary.rejected:
            show.info(rejection_table(summary.rejected.most_common()))
        if summary.accepted == 0:
            raise BrightscanError(f"no alert was accepted ({summary.n_rejected} rejected); nothing written to {out}")
    show.result(f"accepted {summary.accepted}, rejected {summary.n_rejected} -> {summary.out_dir}",
                {"accepted": summary.accepted, "rejected": summary.n_rejected, "out": str(summary.out_dir),
                 "feature_set": features,
                 "rejections": [{"stage": s, "reason": r, "alerts": n}
                                for (s, r), n in summary.rejected.most_common()]})
