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
    features: FeatureSetName = typer.Option("v1", "--features", help="Feature set: v1 (25) or icml2023 (14) for ZTF; rubin_v1 (17, 48 px triplets) for Rubin."),
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
    """Turn alerts into triplets (63x63x3 for ZTF, 48x48x3 for Rubin) and features, as the ZTF broker does."""
    from brightscan.alerts import count_alerts
    from brightscan.distributed import PreprocessJob
    from brightscan.distributed.partitions import write_json_atomic

    # one job from every option: this process runs it whole, --cluster runs it per partition
    job = PreprocessJob(features, overflow, causal=causal, limits=read_limits(read_limit))
    if cluster is not None or resume:
        with handle_errors():
            run = run_job(job, inputs, out, cluster, cluster_config, resume)
        echo_summary(run, "prepared")
        return
    show = Output(quiet, as_json)
    guard = OutputGuard(out)
    with handle_errors(cleanup=guard.remove_new), show.progress() as progress:
        task = progress.add_task("preprocessing alerts", total=count_alerts(inputs))
        summary = job.to_dir(inputs, out, on_item=lambda: progress.advance(task))
        write_json_atomic(job.run_card(), out / "_run.json")
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
