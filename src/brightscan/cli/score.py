"""``brightscan score``: alerts -> scores.parquet (+ scores.rejected.parquet)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

from brightscan.cli.common import (
    JSON_OPTION,
    QUIET_OPTION,
    Backend,
    Output,
    OutputGuard,
    OverflowMode,
    Precision,
    counted,
    handle_errors,
    rejection_table,
)
from brightscan.errors import BrightscanError

#: CLI spelling -> the Scorer's (one spelling across commands: train uses fp32/bf16 too).
_PRECISION = {"fp32": "float32", "bf16": "bfloat16"}


def score(
    inputs: list[str] = typer.Argument(
        ..., help="Alert files (.avro, .parquet, .tar, .tar.gz), directories, glob patterns or URLs (s3://, https://, ...).",
    ),
    model: Path = typer.Option(..., "--model", "-m", help="Model directory."),
    out: Path = typer.Option(Path("scores.parquet"), "--out", "-o", help="Scores file (Parquet)."),
    backend: Backend = typer.Option("torch", "--backend", help="Model runtime; onnx needs `brightscan model export-onnx` first."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Alerts per model call."),
    precision: Precision = typer.Option("fp32", "--precision", help="Convolution precision (bf16: torch only)."),
    threads: int = typer.Option(None, "--threads", min=1, help="Model threads (default: runtime's choice)."),
    causal: bool = typer.Option(
        False, "--causal/--production-history",
        help="Merge the source's earlier alerts in the input into the history (as `preprocess`).",
    ),
    overflow: OverflowMode = typer.Option(
        "reject", "--overflow", help="Cutouts with float32 overflow sentinels: reject them, or zero the channel as production does."
    ),
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Score alerts with a model; rejected alerts go to <out>.rejected.parquet with reasons."""
    from brightscan.alerts import count_alerts, read_alerts
    from brightscan.preprocess.batch import reason_kind
    from brightscan.preprocess.history import History
    from brightscan.score.results import rejected_path, write_scores
    from brightscan.score.scorer import Scorer

    show = Output(quiet, as_json)
    guard = OutputGuard(out, rejected_path(out))
    with handle_errors(cleanup=guard.remove_new):
        scorer = Scorer(model, backend=backend, batch_size=batch_size, precision=_PRECISION[precision],
                        num_threads=threads, overflow=overflow)
        earlier = History.collect(inputs) if causal else None
        with show.progress() as progress:
            task = progress.add_task("scoring alerts", total=count_alerts(inputs))
            items = counted(read_alerts(inputs), lambda n: progress.advance(task, n))
            results = scorer.score_alerts(items, earlier=earlier)
        reasons = Counter((r.stage, reason_kind(r.reason)) for r in results.rejections)
        if reasons:
            show.info(rejection_table(reasons.most_common()))
        if len(results) == 0:
            found = f"all {len(results.rejections)} rejected" if results.rejections else "no alert found"
            raise BrightscanError(f"nothing to score in {', '.join(map(str, inputs))}: {found}")
        scores_path, rejected = write_scores(results, out)
    show.result(
        f"scored {len(results)} alerts with {results.model_id} {results.model_version} -> "
        f"{scores_path}; rejected {len(results.rejections)} -> {rejected}",
        {"scored": len(results), "rejected": len(results.rejections), "model_id": results.model_id,
         "model_version": results.model_version, "scores": str(scores_path), "rejections": str(rejected),
         "rejection_reasons": [{"stage": s, "reason": r, "alerts": n} for (s, r), n in reasons.most_common()]},
    )
