"""``brightscan model``: import published Keras models, export ONNX, show a model's card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from brightscan.cli.common import TYPER_SETTINGS, handle_errors

app = typer.Typer(help="Manage model directories (import, export, inspect).", **TYPER_SETTINGS)


_OUT = typer.Option(..., "--out", "-o", help="Model directory to write.")
_VERSION = typer.Option(None, "--version", help="Version stamped on scores (default: SRC's name).")
_OVERWRITE = typer.Option(False, "--overwrite", help="Replace a model already in --out.")


def _run_import(run_import: Any, src: Path, out: Path, version: str | None, overwrite: bool) -> None:
    """Import with ``run_import`` and say what was written (both import commands)."""
    from brightscan.model import read_card

    with handle_errors():
        path = run_import(src, out, model_version=version, overwrite=overwrite)
        card = read_card(path)
    typer.echo(f"imported {src} as {card['model_id']} {card['model_version']} -> {path}")
    typer.echo(f"no reference distribution (no validation split comes with it): drift is not checked "
               f"until `brightscan model reference {path} --dataset DS` records one", err=True)


@app.command("reference")
def reference(
    model_dir: Path = typer.Argument(..., help="Model directory."),
    dataset: Path = typer.Option(..., "--dataset", "-d", help="Dataset (brightscan dataset build) to take it from."),
    split: str = typer.Option("val", "--split", help="Split the reference is taken from."),
) -> None:
    """Record the model's reference distribution (features and scores of a dataset split) for
    the nightly drift check; `brightscan train` records one itself."""
    from brightscan.evaluate.reference import record_reference

    with handle_errors():
        path = record_reference(model_dir, dataset, split=split)
    typer.echo(f"reference of {dataset}/{split} -> {path}")


@app.command("import-keras")
def import_keras(
    src: Path = typer.Argument(..., help="Keras SavedModel directory (keras_metadata.pb + variables/)."),
    out: Path = _OUT, version: str = _VERSION, overwrite: bool = _OVERWRITE,
) -> None:
    """Convert a published BTSbot Keras SavedModel without TensorFlow (alias of `model import`)."""
    from brightscan.model import import_keras as run_import

    _run_import(run_import, src, out, version, overwrite)


@app.command("import")
def import_any(
    src: Path = typer.Argument(..., help="Keras SavedModel directory, btsbot 2 directory "
                               "(train_config.json + pytorch_model.bin or model.safetensors), or "
                               "ONNX file (btsbot-v2 or btsbot-v1 convention)."),
    out: Path = _OUT, version: str = _VERSION, overwrite: bool = _OVERWRITE,
) -> None:
    """Import a published BTSbot model (Keras v03/v1.0.1, a btsbot 2 directory, or a BTSbot ONNX file);
    no TensorFlow."""
    from brightscan.model.importing import import_model

    _run_import(import_model, src, out, version, overwrite)


@app.command("fetch")
def fetch(
    hub_id: str = typer.Argument(..., help="Hub repository, e.g. nabeelr/BTSbot-convnext-pico-galaxyzoo-metadata."),
    out: Path = typer.Option(..., "--out", "-o", help="Model directory to write."),
    revision: str = typer.Option(None, "--revision", help="Branch, tag or commit to pin (default: main)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Hugging Face cache (default: HF_HOME's)."),
    offline: bool = typer.Option(False, "--offline", help="Read the cache only, no network."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model already in --out."),
) -> None:
    """Download a published BTSbot 2 model from the Hugging Face Hub and import it (extra: hub)."""
    from brightscan.model import read_card
    from brightscan.model.hub import fetch_model

    with handle_errors():
        path = fetch_model(hub_id, out, revision=revision, cache_dir=cache_dir, offline=offline,
                           overwrite=overwrite)
        card = read_card(path)
    typer.echo(f"fetched {hub_id} as {card['model_id']} {card['model_version']} -> {path}")


@app.command("export-onnx")
def export_onnx(
    model_dir: Path = typer.Argument(..., help="Model directory."),
    convention: str = typer.Option("brightscan", "--convention",
                                   help="brightscan (model.onnx: triplet, features -> logit), btsbot-v2 "
                                        "(image NCHW, metadata -> logits, as BOOM loads v2) or btsbot-v1 "
                                        "(triplet NHWC, metadata -> fc_out sigmoid)."),
    out: Path = typer.Option(None, "--out", "-o", help="ONNX file (default: in MODEL_DIR)."),
) -> None:
    """Write MODEL_DIR/model.onnx, or model.btsbot-v2.onnx / model.btsbot-v1.onnx for the brokers."""
    from brightscan.model.onnx_conventions import export_btsbot_onnx
    from brightscan.model.onnx_export import export_onnx as run_export

    with handle_errors():
        if convention == "brightscan":
            path = run_export(model_dir, out=out)
        else:
            path = export_btsbot_onnx(model_dir, convention, out=out)
    typer.echo(f"wrote {path}")


def _model_order(model_dir: Path) -> list[str]:
    from brightscan.model import read_card

    return list(read_card(model_dir)["features"]["order"])


@app.command("quantize")
def quantize(
    model_dir: Path = typer.Argument(..., help="Model directory."),
    dataset: Path = typer.Option(..., "--dataset", help="Dataset whose train split calibrates the int8 ranges."),
    alerts: int = typer.Option(256, "--alerts", min=8, help="Calibration alerts (spread over the train split)."),
) -> None:
    """Write MODEL_DIR/model.int8.onnx: int8 convolutions calibrated on training alerts."""
    from brightscan.evaluate.precision import load_split
    from brightscan.model.quantize import quantize_int8

    with handle_errors():
        train = load_split(dataset, "train", _model_order(model_dir), name=f"{dataset} train", limit=alerts)
        path = quantize_int8(model_dir, train.triplets, train.features, description=train.name)
    typer.echo(f"wrote {path} (calibrated on {len(train.triplets)} training alerts)")


@app.command("judge-precision")
def judge_precision(
    model_dir: Path = typer.Argument(..., help="Model directory."),
    dataset: Path = typer.Option(..., "--dataset", help="Simulated dataset: decisions on its test split; "
                                 "its train split calibrates int8."),
    real: list[Path] = typer.Option(..., "--real", help="Real alert files or folders (repeat the option)."),
    threads: int = typer.Option(1, "--threads", min=1, help="Model threads while timing (1: per-core figure)."),
    precisions: str = typer.Option("bfloat16,int8", "--precisions", help="Reduced precisions to judge."),
) -> None:
    """Count the gt1/bts_prod decisions each reduced precision changes against float32 (simulated test
    split and real alerts), time it on this CPU, and record both in MODEL_DIR/precision.json, which
    `--precision auto` reads."""
    from brightscan.evaluate.precision import judge_precisions, load_real, load_split

    order = _model_order(model_dir)
    with handle_errors():
        sets = [load_split(dataset, "test", order, name="sim"), load_real(real, order)]
        train = load_split(dataset, "train", order, name=f"{dataset} train", limit=256)
        entry = judge_precisions(model_dir, sets, calibration=train, threads=threads,
                                 precisions=[p.strip() for p in precisions.split(",") if p.strip()])
    typer.echo(f"{entry['cpu']} [{' '.join(entry['flags'])}], {threads} thread(s): "
               f"float32 {entry['float32']['alerts_per_s']} alerts/s")
    for name, r in entry["precisions"].items():
        typer.echo(f"{name:9} {r['alerts_per_s']} alerts/s ({r['speedup']}x); decisions changed "
                   f"{r['decisions_differ']}; max |score - fp32| {r['score_dev_max']}")


@app.command("info")
def info(
    model_dir: Path = typer.Argument(..., help="Model directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole model.json."),
) -> None:
    """Show a model's id, version, inputs and provenance (checks its weights hash)."""
    from brightscan.model import load_model

    with handle_errors():
        loaded = load_model(model_dir, device="cpu")
    card = loaded.card
    if as_json:
        typer.echo(json.dumps(card, indent=2))
        return
    n_params = sum(p.numel() for p in loaded.model.parameters())
    typer.echo(f"model      {card['model_id']} {card['model_version']} ({n_params:,} parameters)")
    typer.echo(f"features   {card['features']['set']}: {', '.join(card['features']['order'])}")
    typer.echo(f"preprocess {card.get('preprocessing_version')}")
    typer.echo(f"temperature {card.get('temperature', 1.0)}")
    for key, value in card.get("provenance", {}).items():
        typer.echo(f"{key:<10} {value}")
    typer.echo(f"weights    sha256 {card['weights']['sha256']} (verified)")
