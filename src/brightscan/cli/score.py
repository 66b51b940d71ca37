"""``brightscan score``: alerts -> scores.parquet (+ scores.rejected.parquet)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

from brightscan.cli.common import (
    JSON_OPTION,
    OVERFLOW_OPTION,
    QUIET_OPTION,
    READ_LIMIT_OPTION,
    Backend,
    ScorePrecision,
    Output,
    OutputGuard,
    OverflowMode,
    counted,
    handle_errors,
    read_limits,
    rejection_table,
)
from brightscan.errors import BrightscanError
from brightscan.cli.cluster import cluster_config_option, cluster_option, echo_summary, resume_option, run_job

#: CLI spelling -> the Scorer's (one spelling across commands: train uses fp32/bf16 too).
_PRECISION = {"auto": "auto", "fp32": "float32", "bf16": "bfloat16", "int8": "int8"}


def score(
    inputs: list[str] = typer.Argument(
        ..., help="Alert files (.avro, .parquet, .tar, .tar.gz), directories, glob patterns or URLs (s3://, https://, ...).",
    ),
    model: Path = typer.Option(..., "--model", "-m", help="Model directory."),
    out: Path = typer.Option(Path("scores.parquet"), "--out", "-o",
                             help="Scores file (Parquet); with --cluster, the run folder."),
    backend: Backend = typer.Option(None, "--backend", help="Model runtime (default: the precision's); onnx needs `brightscan model export-onnx` first."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Alerts per model call."),
    precision: ScorePrecision = typer.Option(
        "auto", "--precision",
        help="auto: a reduced precision only where `model judge-precision` measured it faster and decision-neutral "
             "on this CPU; fp32; bf16 (torch); int8 (onnx, after `model quantize`)."),
    threads: int = typer.Option(None, "--threads", min=1, help="Model threads (default: runtime's choice)."),
    device: str = typer.Option(None, "--device", help="Torch device: cpu, cuda, cuda:1 (default: cuda if present)."),
    causal: bool = typer.Option(
        False, "--causal/--production-history",
        help="Merge the source's earlier alerts in the input into the history (as `preprocess`).",
    ),
    overflow: OverflowMode = OVERFLOW_OPTION,
    read_limit: list[str] = READ_LIMIT_OPTION,
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
    cluster: str = cluster_option,
    cluster_config: Path = cluster_config_option,
    resume: bool = resume_option,
) -> None:
    """Score alerts with a model; rejected alerts go to <out>.rejected.parquet with reasons."""
    from brightscan.alerts import count_alerts, read_alerts
    from brightscan.distributed import ScoreJob
    from brightscan.preprocess.batch import reason_kind
    from brightscan.score.results import rejected_path, write_scores

    # one job from every option: this process runs it whole, --cluster runs it per partition
    job = ScoreJob(str(model), backend=backend, precision=_PRECISION[precision], batch_size=batch_size,
                   device=device, overflow=overflow, threads=threads, causal=causal,
                   limits=read_limits(read_limit))
    if cluster is not None or resume:
        with handle_errors():
            summary = run_job(job, inputs, out, cluster, cluster_config, resume)
        echo_summary(summary, "scored")
        return
    show = Output(quiet, as_json)
    guard = OutputGuard(out, rejected_path(out))
    with handle_errors(cleanup=guard.remove_new):
        with show.progress() as progress:
            task = progress.add_task("scoring alerts", total=count_alerts(inputs))
            items = counted(read_alerts(inputs, limits=job.limits), lambda n: progress.advance(task, n))
            results = job.score(items, inputs)
        reasons = Counter((r.stage, reason_kind(r.reason)) for r in results.rejections)
        if reasons:
            show.info(rejection_table(reasons.most_common()))
        if len(results) == 0:
            found = f"all {len(results.rejections)} rejected" if results.rejections else "no alert found"
            raise BrightscanError(f"nothing to score in {', '.join(map(str, inputs))}: {found}")
        scores_path, rejected = write_scores(results, out, run={**job.run_card(), **job.stamp()})
    show.result(
        f"scored {len(results)} alerts with {results.model_id} {results.model_version} -> "
        f"{scores_path}; rejected {len(results.rejections)} -> {rejected}",
        {"scored": len(results), "rejected": len(results.rejections), "model_id": results.model_id,
         "model_version": results.model_version, "scores": str(scores_path), "rejections": str(rejected),
         "rejection_reasons": [{"stage": s, "reason": r, "alerts": n} for (s, r), n in reasons.most_common()]},
    )

