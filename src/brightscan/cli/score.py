"""``brightscan score``: alerts -> scores.parquet (+ scores.rejected.parquet)."""

from __future__ import annotations

from pathlib import Path

import typer

from brightscan.cli.common import handle_errors


def score(
    inputs: list[str] = typer.Argument(
        ..., help="Alert files (.avro, .parquet, .tar, .tar.gz), directories, glob patterns or URLs (s3://, https://, ...).",
    ),
    model: Path = typer.Option(..., "--model", "-m", help="Model directory."),
    out: Path = typer.Option(Path("scores.parquet"), "--out", "-o", help="Scores file (Parquet)."),
    backend: str = typer.Option("torch", "--backend", help="torch or onnx (needs `model export-onnx`)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Alerts per model call."),
    precision: str = typer.Option("float32", "--precision", help="float32, or bfloat16 (torch only)."),
    threads: int = typer.Option(None, "--threads", min=1, help="Model threads (default: runtime's choice)."),
    causal: bool = typer.Option(
        False, "--causal/--production-history",
        help="Merge the source's earlier alerts in the input into the history (as `preprocess`).",
    ),
) -> None:
    """Score alerts with a model; rejected alerts go to <out>.rejected.parquet with reasons."""
    from brightscan.score.results import write_scores
    from brightscan.score.scorer import Scorer

    with handle_errors():
        scorer = Scorer(model, backend=backend, batch_size=batch_size, precision=precision,
                        num_threads=threads)
        results = scorer.score_files(inputs, causal=causal)
        scores_path, rejected_path = write_scores(results, out)
    typer.echo(
        f"scored {len(results)} alerts with {results.model_id} {results.model_version} -> "
        f"{scores_path}; rejected {len(results.rejections)} -> {rejected_path}"
    )
