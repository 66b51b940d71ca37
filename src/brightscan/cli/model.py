"""``brightscan model``: import published Keras models, export ONNX, show a model's card."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from brightscan.cli.common import TYPER_SETTINGS, handle_errors

app = typer.Typer(help="Manage model directories (import, export, inspect).", **TYPER_SETTINGS)


@app.command("import-keras")
def import_keras(
    src: Path = typer.Argument(..., help="Keras SavedModel directory (keras_metadata.pb + variables/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Model directory to write."),
    version: str = typer.Option(None, "--version", help="Version stamped on scores (default: SRC's name)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model already in --out."),
) -> None:
    """Convert a published BTSbot Keras SavedModel without TensorFlow."""
    from brightscan.model import import_keras as run_import
    from brightscan.model import read_card

    with handle_errors():
        path = run_import(src, out, model_version=version, overwrite=overwrite)
        card = read_card(path)
    typer.echo(f"imported {src} as {card['model_id']} {card['model_version']} -> {path}")


@app.command("export-onnx")
def export_onnx(
    model_dir: Path = typer.Argument(..., help="Model directory."),
) -> None:
    """Write MODEL_DIR/model.onnx (inputs triplet, features; output logit)."""
    from brightscan.model.onnx_export import export_onnx as run_export

    with handle_errors():
        path = run_export(model_dir)
    typer.echo(f"wrote {path}")


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
