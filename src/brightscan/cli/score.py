"""``brightscan score``: alerts -> scores.parquet (+ scores.rejected.parquet)."""

from __future__ import annotations

from pathlib import Path

import typer

from brightscan.cli.cluster import (
    cluster_config_option, cluster_option, echo_summary, resume_option, run_job,
)
from brightscan.cli.common import handle_errors


def score(
    inputs: list[Path] = typer.Argument(..., help="Alert files (.avro, .parquet, .tar, .tar.gz) or directories."),
    model: Path = typer.Option(..., "--model", "-m", help="Model directory."),
    out: Path = typer.Option(Path("scores.parquet"), "--out", "-o",
                             help="Scores file (Parquet); with --cluster, the run folder."),
    backend: str = typer.Option(None, "--backend",
                                help="torch or onnx (needs `model export-onnx`); default: the precision's."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Alerts per model call."),
    precision: str = typer.Option(
        "auto", "--precision",
        help="auto (a reduced precision only where `model judge-precision` measured it faster and "
             "decision-neutral on this CPU), float32, bfloat16 (torch) or int8 (onnx, `model quantize`)."),
    threads: int = typer.Option(None, "--threads", min=1, help="Model threads (default: runtime's choice)."),
    device: str = typer.Option(None, "--device", help="Torch device: cpu, cuda, cuda:1 (default: cuda if present)."),
    causal: bool = typer.Option(
        False, "--causal/--production-history",
        help="Merge the source's earlier alerts in the input into the history (as `preprocess`).",
    ),
    cluster: str = cluster_option,
    cluster_config: Path = cluster_config_option,
    resume: bool = resume_option,
) -> None:
    """Score alerts with a model; rejected alerts go to <out>.rejected.parquet with reasons."""
    from brightscan.score.results import write_scores
    from brightscan.score.scorer import Scorer

    if cluster is not None or resume:
        _score_partitioned(inputs, model, out, backend, batch_size, precision, device, causal,
                           cluster, cluster_config, resume)
        return
    with handle_errors():
        scorer = Scorer(model, backend=backend, batch_size=batch_size, precision=precision,
                        num_threads=threads, device=device)
        results = scorer.score_files(inputs, causal=causal)
        scores_path, rejected_path = write_scores(results, out)
    typer.echo(
        f"scored {len(results)} alerts with {results.model_id} {results.model_version} -> "
        f"{scores_path}; rejected {len(results.rejections)} -> {rejected_path}"
    )


def _score_partitioned(inputs: list[Path], model: Path, out: Path, backend: str, batch_size: int,
                       precision: str, device: str | None, causal: bool, cluster: str | None,
                       cluster_config: Path | None, resume: bool) -> None:
    from brightscan.distributed import ScoreJob

    if causal:
        raise typer.BadParameter("--causal needs every file's alerts at once; it is not available "
                                 "with --cluster (each partition is scored with its packets' own history)")
    with handle_errors():
        job = ScoreJob(str(model), backend=backend, precision=precision, batch_size=batch_size, device=device)
        summary = run_job(job, inputs, out, cluster, cluster_config, resume)
    echo_summary(summary, "scored")
