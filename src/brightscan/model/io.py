"""Model directories: weights in safetensors plus a ``model.json`` card. No pickle anywhere.

Layout of a model directory::

    model.json            # the card: id, version, full config, input contract, provenance, hash
    weights.safetensors   # the state dict (float32)
    model.onnx            # optional, written by ``brightscan model export-onnx``

The card carries the model's whole input contract (cutout size and order, feature set and order,
preprocessing version, label meaning), so inference never needs a second copy of any of it.
Loading re-hashes the weights and refuses a corrupted file, an unknown preset or a feature set
that does not match, with a :class:`~brightscan.errors.ModelFileError` saying which.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from brightscan.errors import BrightscanError, ConfigError, ModelFileError
from brightscan.model.registry import AnyConfig, AnyModel, build_model, config_from_dict, default_device, list_presets
from brightscan.storage import read_json_card

__all__ = [
    "CARD_NAME",
    "WEIGHTS_NAME",
    "FORMAT_VERSION",
    "LoadedModel",
    "save_model",
    "load_model",
    "read_card",
    "set_temperature",
    "sha256_file",
    "write_calibrated",
    "write_operating_point",
]

CARD_NAME = "model.json"
WEIGHTS_NAME = "weights.safetensors"
FORMAT_VERSION = 1
_FORMAT = "brightscan-model"


@dataclass(frozen=True)
class LoadedModel:
    """A model read from a directory, with its card."""

    model: AnyModel  # in eval mode, on the requested device
    card: dict[str, Any]  # the parsed model.json
    path: Path  # the model directory

    @property
    def config(self) -> AnyConfig:
        """The architecture config."""
        return self.model.config

    @property
    def model_id(self) -> str:
        """Preset id, stamped on every score."""
        return self.card["model_id"]

    @property
    def model_version(self) -> str:
        """Model version, stamped on every score."""
        return self.card["model_version"]

    @property
    def survey(self) -> str:
        """The survey whose alerts the model was trained on (``"ztf"`` or ``"rubin"``)."""
        return trained_on(self.config)["survey"]

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature order the model expects."""
        return tuple(self.card["features"]["order"])

    @property
    def temperature(self) -> float:
        """Calibration temperature: score = sigmoid(logit / temperature)."""
        return float(self.card.get("temperature", 1.0))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _feature_order(feature_set: str, n_features: int) -> list[str]:
    from brightscan.preprocess import feature_set_names

    try:
        order = list(feature_set_names(feature_set))
    except KeyError:
        raise ConfigError(f"feature set {feature_set!r} is not known to brightscan.preprocess") from None
    if len(order) != n_features:
        raise ConfigError(
            f"feature set {feature_set!r} has {len(order)} features but the model takes {n_features}"
        )
    return order


def _preprocessing_contract(survey: str = "ztf") -> tuple[str, list[str]]:
    """This code's preprocessing version for a survey, and the cutout (channel) order."""
    from brightscan.preprocess import CUTOUT_ORDER, PREPROCESSING_VERSION, RUBIN_PREPROCESSING_VERSION

    return (RUBIN_PREPROCESSING_VERSION if survey == "rubin" else PREPROCESSING_VERSION), list(CUTOUT_ORDER)


def trained_on(config: ModelConfig) -> dict[str, Any]:
    """What a model was trained on: survey, feature set and input size (the card's ``trained_on``).

    Raises
    ------
    ConfigError
        When the input size cannot be the survey's (ZTF's triplets are always 63 px).
    """
    from brightscan.preprocess import STAMP_SIZE, feature_set_survey

    try:
        survey = feature_set_survey(config.feature_set)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    if survey == "ztf" and config.uses_image and config.image_size != STAMP_SIZE:
        raise ConfigError(f"a ZTF model takes {STAMP_SIZE} px triplets, not {config.image_size} px")
    return {"survey": survey, "feature_set": config.feature_set,
            "input_size": [config.image_size, config.image_size, config.image_channels]}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees half a card


def save_model(
    model: AnyModel,
    directory: str | Path,
    *,
    model_version: str | None = None,
    provenance: dict[str, Any] | None = None,
    temperature: float = 1.0,
    overwrite: bool = False,
) -> Path:
    """Write a model directory (``weights.safetensors`` + ``model.json``).

    Parameters
    ----------
    model : MultiInputCNN or Btsbot2Model
        The model; its config gives the preset id, architecture and feature set.
    directory : str or Path
        Created if needed.
    model_version : str, optional
        Version stamped on scores; default the config's preset version.
    provenance : dict, optional
        Where the weights come from, e.g. ``{"imported_from": ...}`` or ``{"trained_on": ...}``;
        ``date`` and ``code_version`` are added.
    temperature : float
        Calibration temperature (1.0 = uncalibrated).
    overwrite : bool
        Replace an existing model in ``directory``.

    Returns
    -------
    Path
        The directory.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    temperature = _check_temperature(temperature)
    if (directory / CARD_NAME).exists() and not overwrite:
        raise ModelFileError(f"{directory} already holds a model (--overwrite, or overwrite=True in Python, replaces it)")
    config = model.config
    order = _feature_order(config.feature_set, config.n_features)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()
             if v.is_floating_point()}
    weights_path = directory / WEIGHTS_NAME
    save_file(state, str(weights_path), metadata={"model_id": config.preset})
    card = _build_card(config, order, weights_path, model_version=model_version,
                       provenance=provenance, temperature=temperature)
    _write_json(directory / CARD_NAME, card)
    return directory


def _build_card(config: AnyConfig, order: list[str], weights_path: Path, *,
                model_version: str | None, provenance: dict[str, Any] | None,
                temperature: float) -> dict[str, Any]:
    from brightscan import __version__

    contract = trained_on(config)
    preprocessing_version, channels = _preprocessing_contract(contract["survey"])
    return {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": config.preset,
        "model_version": model_version or config.version,
        "trained_on": contract,
        "config": config.to_dict(),
        "inputs": {
            "triplet": {"shape": [config.image_size, config.image_size, config.image_channels],
                        "layout": "NHWC", "dtype": "float32",
                        "channels": channels},
            "features": {"dtype": "float32"},
        },
        "features": {"set": config.feature_set, "order": order,
                     # BatchNorm's running statistics are weights: every backend applies them
                     "normalisation": "batchnorm" if config.feature_batchnorm else "none (raw, as in the paper)"},
        "preprocessing_version": preprocessing_version,
        "output": {"kind": "logit", "score": "sigmoid(logit / temperature)",
                   "positive_label": "bright transient (BTS-worthy)"},
        "temperature": temperature,
        "provenance": {
            **(provenance or {}),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "code_version": f"brightscan {__version__}",
        },
        "weights": {"file": WEIGHTS_NAME, "sha256": sha256_file(weights_path)},
    }


def read_card(directory: str | Path) -> dict[str, Any]:
    """Parse and check the ``model.json`` of a model directory.

    Raises
    ------
    ModelFileError
        When it is missing, not JSON, of another format, or names an unknown preset.
    """
    card = read_json_card(directory, CARD_NAME, fmt=_FORMAT, version=FORMAT_VERSION,
                          error=ModelFileError, what="model directory")
    path = Path(directory) / CARD_NAME
    missing = [k for k in ("model_id", "model_version", "config", "features", "weights")
               if k not in card]
    if missing:
        raise ModelFileError(f"{path} lacks {', '.join(missing)}")
    if card["model_id"] not in list_presets():
        raise ModelFileError(
            f"{path}: unknown model preset {card['model_id']!r} (this brightscan knows "
            f"{', '.join(list_presets())}); is the model newer than the code?"
        )
    return card


def _check_features(card: dict[str, Any], config: AnyConfig, expected: str | None) -> None:
    stored = card["features"]
    where = f"model {card['model_id']}"
    if stored.get("set") != config.feature_set or len(stored.get("order", [])) != config.n_features:
        raise ModelFileError(f"{where}: its feature list does not match its own config")
    if expected is not None and expected != stored["set"]:
        raise ModelFileError(
            f"{where} takes feature set {stored['set']!r}, not the requested {expected!r}"
        )
    try:
        current = _feature_order(stored["set"], config.n_features)
    except ConfigError as exc:
        raise ModelFileError(f"{where}: {exc}") from None
    if list(stored["order"]) != current:
        raise ModelFileError(
            f"{where} was saved with a feature order for set {stored['set']!r} that differs from "
            f"this brightscan's; scores would be wrong"
        )


def _check_survey(card: dict[str, Any], config: ModelConfig, expected: str | None) -> None:
    # Cards written before the Rubin work have no trained_on: their feature set says the survey.
    where = f"model {card['model_id']}"
    try:
        contract = trained_on(config)
    except ConfigError as exc:
        raise ModelFileError(f"{where}: {exc}") from None
    stated = card.get("trained_on", contract)
    if stated != contract:
        raise ModelFileError(f"{where}: its card says it was trained on {stated}, its config says {contract}")
    if expected is not None and expected != contract["survey"]:
        raise ModelFileError(f"{where} was trained on {contract['survey'].upper()} alerts and cannot "
                             f"score {expected.upper()} alerts")


def load_model(
    directory: str | Path,
    *,
    feature_set: str | None = None,
    survey: str | None = None,
    device: str | torch.device | None = None,
) -> LoadedModel:
    """Load a model directory, checking its weights hash and input contract.

    Parameters
    ----------
    directory : str or Path
        A directory written by :func:`save_model`.
    feature_set : str, optional
        Refuse the model unless it takes this feature set.
    survey : {"ztf", "rubin"}, optional
        Refuse the model unless it was trained on this survey's alerts.
    device : str or torch.device, optional
        Default :func:`~brightscan.model.registry.default_device`.

    Raises
    ------
    ModelFileError
        Missing/corrupted files, hash mismatch, unknown preset, feature-set or survey mismatch.
    ConfigError
        A device that is not one, or CUDA where torch sees none.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    card = read_card(directory)
    try:
        config = config_from_dict(card["config"])
    except ConfigError as exc:
        raise ModelFileError(f"{directory / CARD_NAME}: {exc}") from None
    _check_features(card, config, feature_set)
    _check_survey(card, config, survey)
    weights_path = directory / card["weights"].get("file", WEIGHTS_NAME)
    if not weights_path.is_file():
        raise ModelFileError(f"weights file {weights_path} not found")
    if sha256_file(weights_path) != card["weights"].get("sha256"):
        raise ModelFileError(
            f"{weights_path} does not match the sha256 in {CARD_NAME}: the file is corrupted or "
            "was modified; refusing to load it"
        )
    model = build_model(config)
    try:
        state = load_file(str(weights_path))
        model.load_state_dict(state, strict=False)
        _check_state_keys(model, state)
    except (SafetensorError, RuntimeError, BrightscanError) as exc:
        raise ModelFileError(f"cannot load weights {weights_path}: {exc}") from None
    return LoadedModel(model=model.to(_device(device)).eval(), card=card, path=directory)


def _device(device: str | torch.device | None) -> torch.device:
    """The torch device asked for; ``ConfigError`` for a malformed one or CUDA where torch has none."""
    if device is None:
        return default_device()
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device (cpu, cuda, cuda:N): {exc}") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device} asked for, but torch sees no CUDA device "
                          "(a CPU-only torch build, or no GPU); use --device cpu")
    return target


def _check_state_keys(model: AnyModel, state: dict[str, torch.Tensor]) -> None:
    expected = {k for k, v in model.state_dict().items() if v.is_floating_point()}
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ModelFileError(f"missing tensors {sorted(missing)}, unexpected {sorted(unexpected)}")


def _check_temperature(value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"temperature must be a finite positive number, not {value}")
    return value


def set_temperature(directory: str | Path, temperature: float) -> None:
    """Store a calibration temperature in a model's card (scores become sigmoid(logit / T)).

    The weights are untouched, so their hash stays valid. Both scoring backends read the
    temperature from the card (``model.onnx`` outputs the raw logit), so nothing is re-exported.
    The reference's score histogram (drift) moves with the scores.
    """
    directory = Path(directory)
    card = read_card(directory)
    _retemper(card, temperature, directory, directory)


def write_calibrated(directory: str | Path, temperature: float, out: str | Path, *,
                     fitted_on: str | None = None) -> Path:
    """Write a new version of the model in ``directory`` with a calibration temperature, into
    ``out`` (created; it must not hold a model): the same weights (their hash stays valid), a card
    with ``temperature``, ``model_version`` ``<version>+calibrated`` and ``provenance.calibrated_from``.
    The model read is never changed.

    Returns
    -------
    Path
        ``out``.
    """
    import shutil

    directory, out = Path(directory), Path(out)
    card = read_card(directory)
    if (out / CARD_NAME).exists():
        raise ModelFileError(f"{out} already holds a model")
    shutil.copytree(directory, out, dirs_exist_ok=True)
    card["provenance"] = {**(card.get("provenance") or {}), "calibrated_from": {
        "model_dir": str(directory), "model_version": card["model_version"], "fitted_on": fitted_on}}
    card["model_version"] = f"{card['model_version']}+calibrated"
    _retemper(card, temperature, directory, out)
    return out


def _retemper(card: dict[str, Any], temperature: float, directory: Path, out: Path) -> None:
    """Give ``card`` (of the model in ``directory``) ``temperature`` and write it into ``out``,
    with the reference's score edges moved where the new temperature puts the same alerts."""
    old = float(card.get("temperature", 1.0))
    card["temperature"] = _check_temperature(temperature)
    _write_json(out / CARD_NAME, card)
    _move_reference_scores(directory, out, scale=old / card["temperature"], shift=0.0,
                           note={"temperature": card["temperature"]})


def _move_reference_scores(directory: Path, out: Path, *, scale: float, shift: float,
                           note: dict[str, Any]) -> None:
    """Write into ``out`` the reference of the model in ``directory`` with its score histogram
    where a model scoring ``sigmoid(scale * logit(s) + shift)`` for this one's ``s`` puts it: the
    same alerts in the same bins, so drift compares a night's scores with the scores the new
    version gives. ``note`` joins the reference's provenance. Nothing happens without a reference.
    """
    import numpy as np

    from brightscan.model.reference import SCORE, Reference, read_reference, write_reference

    reference = read_reference(directory)
    if reference is None:
        return
    scores = reference.columns[SCORE]
    with np.errstate(divide="ignore", over="ignore"):  # edges 0 and 1 stay 0 and 1 (logit +-inf)
        logits = np.log(scores.edges) - np.log1p(-scores.edges)
        edges = 1.0 / (1.0 + np.exp(-(scale * logits + shift)))
    columns = {**reference.columns, SCORE: type(scores)(edges, scores.counts, scores.n_nonfinite)}
    write_reference(out, Reference(columns, reference.split, reference.n_alerts, {**reference.provenance, **note}))


def _output_layer(model: AnyModel) -> torch.nn.Linear:
    """The layer that makes the logit: the last ``nn.Linear`` with one output."""
    found = [m for m in model.modules()
             if isinstance(m, torch.nn.Linear) and m.out_features == 1 and m.bias is not None]
    if not found:
        raise ModelFileError(f"{model.config.preset}: no single-output linear layer to move the operating point in")
    return found[-1]


def _probe_logits(model: AnyModel) -> torch.Tensor:
    """Logits of seeded random inputs (a check that a change to the weights did what it should)."""
    config = model.config
    gen = torch.Generator().manual_seed(0)
    triplets = torch.randn(8, config.image_size, config.image_size, config.image_channels, generator=gen) * 0.3
    features = torch.randn(8, config.n_features, generator=gen)
    device = next(model.parameters()).device
    with torch.no_grad():
        return model(triplets.to(device) if config.uses_image else None,
                     features.to(device) if config.uses_features else None).reshape(-1).double().cpu()


def write_operating_point(directory: str | Path, threshold: float, out: str | Path, *,
                          fitted_on: str | None = None) -> Path:
    """Write a new version of the model in ``directory`` whose score 0.5 lies where this one
    scores ``threshold``, into ``out`` (created; it must not hold a model).

    The output layer's bias moves by ``-temperature * logit(threshold)``, so every score becomes
    ``sigmoid(logit / T - logit(threshold))``: the ranking, the AUC and every decision at a moved
    threshold are unchanged, and gt1 at 0.5 with the new model is gt1 at ``threshold`` with this
    one. Every scorer (torch, ONNX, the cluster and Spark paths) reads it from the weights. The card
    gets ``model_version`` ``<version>+op<threshold>`` and ``provenance.operating_point``; the
    reference's score histogram (drift) is moved the same way. The model read is never changed.

    Raises
    ------
    ConfigError
        A threshold outside (0, 1).
    ModelFileError
        ``out`` already holds a model, or the model has no single-output linear layer whose bias
        moves its logit.
    """
    threshold = float(threshold)
    if not (math.isfinite(threshold) and 0.0 < threshold < 1.0):
        raise ConfigError(f"the operating point must be a threshold between 0 and 1, not {threshold}")
    directory, out = Path(directory), Path(out)
    if (out / CARD_NAME).exists():
        raise ModelFileError(f"{out} already holds a model")
    loaded = load_model(directory, device="cpu")
    offset = math.log(threshold / (1.0 - threshold))  # logit(threshold)
    shift = loaded.temperature * offset
    before = _probe_logits(loaded.model)
    with torch.no_grad():
        _output_layer(loaded.model).bias.sub_(shift)
    moved = before - _probe_logits(loaded.model)
    if not torch.allclose(moved, torch.full_like(moved, shift), atol=1e-4 * max(1.0, abs(shift))):
        raise ModelFileError(f"{directory}: moving the output layer's bias did not move the logit by {shift:.6g} "
                             f"(moved by {moved.min():.6g} to {moved.max():.6g}); the model's output is not linear "
                             "in its last layer")
    provenance = {**(loaded.card.get("provenance") or {}), "operating_point": {
        "model_dir": str(directory), "model_version": loaded.model_version, "threshold": threshold,
        "logit_shift": shift, "fitted_on": fitted_on}}
    save_model(loaded.model, out, model_version=f"{loaded.model_version}+op{threshold:g}",
               provenance=provenance, temperature=loaded.temperature)
    _move_reference_scores(directory, out, scale=1.0, shift=-offset, note={"operating_point": threshold})
    return out
