"""Convert a published BTSbot Keras SavedModel into a brightscan model, without TensorFlow.

Two files are read directly:

- ``keras_metadata.pb``: a ``SavedMetadata`` protobuf whose nodes carry each Keras object's JSON
  config (``node_path`` like ``root.layer_with_weights-3`` plus the layer ``name``); the root
  node holds the functional graph (layers, their configs and inbound connections).
- ``variables/variables.index`` + ``variables.data-*``: the TF checkpoint, read by
  :mod:`brightscan.model.tf_checkpoint`; its keys are ``<node_path>/<weight>/.ATTRIBUTES/...``.

Mapping is by graph and layer name, never by position guessing: each layer is assigned to the
image branch, the feature branch or the head from which model inputs it descends; the
architecture read from the Keras configs must equal one registered preset exactly, and every
Keras weight must land on one torch parameter. Layout pitfalls handled here: Keras convolution
kernels are ``(kh, kw, in, out)`` (torch: ``(out, in, kh, kw)``); Dense kernels are ``(in, out)``;
the first dense layer after ``Flatten`` sees Keras' NHWC flatten order (row, column, channel)
while torch flattens NCHW (channel, row, column), so its input rows are permuted; BatchNorm uses
``gamma/beta/moving_mean/moving_variance`` with Keras' epsilon 1e-3; the final sigmoid is
dropped because our model outputs the logit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brightscan.errors import ModelFileError
from brightscan.model.config import ModelConfig
from brightscan.model.mi_cnn import MultiInputCNN
from brightscan.model.registry import get_config, list_presets
from brightscan.model.tf_checkpoint import iter_fields, read_checkpoint

__all__ = ["KerasGraph", "read_keras_metadata", "keras_to_torch", "import_keras"]

# Fields that define the architecture (the rest of ModelConfig is naming and training recipe).
_ARCH_FIELDS = ("branches", "image_size", "image_channels", "conv_filters", "kernel_size",
                "pool_sizes", "conv_dropouts", "n_features", "feature_batchnorm",
                "batchnorm_eps", "feature_units", "feature_dropouts", "head_units", "head_dropout")


@dataclass
class KerasGraph:
    """The functional graph of a Keras model, as read from ``keras_metadata.pb``."""

    name: str  # Keras model name
    keras_version: str  # e.g. "2.10.0"
    layers: list[dict[str, Any]]  # {"class_name", "name", "config", "inbound": [names]}, in order
    inputs: list[str]  # input layer names, in call order (triplet, metadata)
    weight_prefix: dict[str, str] = field(default_factory=dict)  # layer name -> checkpoint prefix

    def layer(self, name: str) -> dict[str, Any]:
        """The layer called ``name``."""
        return next(layer for layer in self.layers if layer["name"] == name)


def read_keras_metadata(savedmodel_dir: str | Path) -> KerasGraph:
    """Parse ``keras_metadata.pb`` of a SavedModel into a :class:`KerasGraph`.

    Raises
    ------
    ModelFileError
        When the file is missing or is not a functional Keras model.
    """
    path = Path(savedmodel_dir) / "keras_metadata.pb"
    if not path.is_file():
        raise ModelFileError(f"{path} not found: not a Keras SavedModel directory")
    root: dict[str, Any] | None = None
    prefixes: dict[str, str] = {}
    # SavedMetadata { repeated SavedObject nodes = 1 }; SavedObject { node_path = 3; metadata = 5 }
    for number, node in iter_fields(path.read_bytes()):
        if number != 1:
            continue
        fields = dict(iter_fields(node))
        node_path = fields.get(3, b"").decode()
        try:
            meta = json.loads(fields.get(5, b"{}"))
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"{path}: node {node_path} metadata is not JSON: {exc}") from None
        if node_path == "root":
            root = meta
        elif node_path.startswith("root.layer") and "name" in meta:
            prefixes[meta["name"]] = node_path.removeprefix("root.").replace(".", "/")
    if root is None or root.get("class_name") != "Functional":
        raise ModelFileError(f"{path}: no functional Keras model at the root")
    config = root["config"]
    layers = [
        {"class_name": item["class_name"], "name": item["name"], "config": item["config"],
         "inbound": [conn[0] for node in item.get("inbound_nodes", []) for conn in node]}
        for item in config["layers"]
    ]
    return KerasGraph(
        name=config.get("name", ""),
        keras_version=root.get("keras_version", "unknown"),
        layers=layers,
        inputs=[entry[0] for entry in config["input_layers"]],
        weight_prefix=prefixes,
    )


def _branch_of(graph: KerasGraph) -> dict[str, str]:
    """Map each layer to "image", "features" or "head" by which inputs it descends from."""
    image_input, feature_input = graph.inputs  # BTSbot: (triplet, metadata)
    roots: dict[str, set[str]] = {}
    for layer in graph.layers:  # Keras lists layers in topological order
        if not layer["inbound"]:
            roots[layer["name"]] = {layer["name"]}
        else:
            roots[layer["name"]] = set().union(*(roots[name] for name in layer["inbound"]))
    names = {frozenset({image_input}): "image", frozenset({feature_input}): "features"}
    return {name: names.get(frozenset(r), "head") for name, r in roots.items()}


def _require(ok: bool, layer: dict[str, Any], what: str) -> None:
    if not ok:
        raise ModelFileError(f"Keras layer {layer['name']}: unsupported {what}")


def _image_arch(layers: list[dict[str, Any]]) -> dict[str, Any]:
    blocks, pools, drops, current, kernels = [], [], [], [], set()
    for layer in layers:
        cls, cfg = layer["class_name"], layer["config"]
        if cls == "Conv2D":
            _require(cfg["padding"] == "same" and cfg["activation"] == "relu"
                     and cfg["strides"]["items"] == [1, 1], layer, "convolution settings")
            kernels.add(tuple(cfg["kernel_size"]["items"]))
            current.append(int(cfg["filters"]))
        elif cls == "MaxPooling2D":
            size = cfg["pool_size"]["items"]
            _require(size[0] == size[1] and cfg["strides"]["items"] == size
                     and cfg["padding"] == "valid", layer, "pooling settings")
            blocks.append(tuple(current))
            pools.append(size[0])
            drops.append(0.0)
            current = []
        elif cls == "Dropout":
            drops[-1] = float(cfg["rate"])
        else:
            _require(cls in ("InputLayer", "Flatten"), layer, f"layer class {cls}")
    _require(len(kernels) == 1 and not current, layers[-1], "image-branch layout")
    (kernel,) = kernels
    shape = layers[0]["config"]["batch_input_shape"]["items"]
    return {"conv_filters": tuple(blocks), "pool_sizes": tuple(pools),
            "conv_dropouts": tuple(drops), "kernel_size": kernel[0],
            "image_size": shape[1], "image_channels": shape[3]}


def _dense_arch(layers: list[dict[str, Any]]) -> dict[str, Any]:
    units, drops, batchnorm, eps = [], [], False, 1e-3
    for layer in layers:
        cls, cfg = layer["class_name"], layer["config"]
        if cls == "Dense":
            units.append((int(cfg["units"]), cfg["activation"]))
            drops.append(0.0)
        elif cls == "Dropout":
            drops[-1] = float(cfg["rate"])
        elif cls == "BatchNormalization":
            _require(not units and cfg["center"] and cfg["scale"], layer, "BatchNorm position")
            batchnorm, eps = True, float(cfg["epsilon"])
        else:
            _require(cls in ("InputLayer", "Concatenate"), layer, f"layer class {cls}")
    return {"units": units, "drops": drops, "batchnorm": batchnorm, "eps": eps}


def keras_architecture(graph: KerasGraph) -> dict[str, Any]:
    """Architecture fields (as in :class:`ModelConfig`) read from the Keras layer configs."""
    branch = _branch_of(graph)
    parts = {b: [layer for layer in graph.layers if branch[layer["name"]] == b]
             for b in ("image", "features", "head")}
    image = _image_arch(parts["image"])
    feats = _dense_arch(parts["features"])
    head = _dense_arch(parts["head"])
    _require(all(act == "relu" for _, act in feats["units"] + head["units"][:-1])
             and head["units"][-1] == (1, "sigmoid"), graph.layers[-1], "dense activations")
    _require(len(set(head["drops"][:-1])) == 1 and feats["drops"][-1] == 0.0,
             graph.layers[-1], "dropout placement")
    n_features = parts["features"][0]["config"]["batch_input_shape"]["items"][1]
    return {**image, "branches": "both", "n_features": n_features,
            "feature_batchnorm": feats["batchnorm"], "batchnorm_eps": feats["eps"],
            "feature_units": tuple(u for u, _ in feats["units"]),
            "feature_dropouts": tuple(feats["drops"][:-1]),
            "head_units": tuple(u for u, _ in head["units"][:-1]),
            "head_dropout": head["drops"][0]}


def match_preset(arch: dict[str, Any]) -> ModelConfig:
    """The registered preset whose architecture equals ``arch`` exactly."""
    for preset_id in list_presets():
        config = get_config(preset_id)
        if not isinstance(config, ModelConfig):  # Keras files hold only the multi-input CNN
            continue
        if all(_close(getattr(config, key), arch[key]) for key in _ARCH_FIELDS):
            return config
    raise ModelFileError(f"no registered model preset has the Keras model's architecture {arch}")


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(map(_close, a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) < 1e-9
    return a == b


def _flatten_permutation(config: ModelConfig) -> np.ndarray:
    """Row order turning Keras' NHWC-flattened inputs into torch's NCHW-flattened inputs."""
    side, channels = config.pooled_size, config.conv_filters[-1][-1]
    keras_index = np.arange(side * side * channels).reshape(side, side, channels)
    return keras_index.transpose(2, 0, 1).ravel()  # torch position t -> Keras position


def keras_to_torch(graph: KerasGraph, tensors: dict[str, np.ndarray],
                   config: ModelConfig) -> dict[str, torch.Tensor]:
    """Map checkpoint tensors to a torch state dict for ``MultiInputCNN(config)``."""
    branch = _branch_of(graph)

    def weight(layer: str, name: str) -> np.ndarray:
        key = f"{graph.weight_prefix.get(layer, '?')}/{name}/.ATTRIBUTES/VARIABLE_VALUE"
        if key not in tensors:
            raise ModelFileError(f"checkpoint lacks {name} of Keras layer {layer} ({key})")
        return tensors[key]

    state: dict[str, np.ndarray] = {}
    convs = [lay["name"] for lay in graph.layers if lay["class_name"] == "Conv2D"]
    for i, name in enumerate(convs):
        state[f"convs.{i}.weight"] = weight(name, "kernel").transpose(3, 2, 0, 1)
        state[f"convs.{i}.bias"] = weight(name, "bias")
    for lay in graph.layers:
        if lay["class_name"] == "BatchNormalization":
            for keras_name, torch_name in (("gamma", "weight"), ("beta", "bias"),
                                           ("moving_mean", "running_mean"),
                                           ("moving_variance", "running_var")):
                state[f"feature_norm.{torch_name}"] = weight(lay["name"], keras_name)
    dense = {b: [lay["name"] for lay in graph.layers
                 if lay["class_name"] == "Dense" and branch[lay["name"]] == b]
             for b in ("features", "head")}
    targets = [f"feature_layers.{i}" for i in range(len(dense["features"]))]
    targets += [f"head_layers.{i}" for i in range(len(dense["head"]) - 1)] + ["output"]
    for target, name in zip(targets, dense["features"] + dense["head"]):
        kernel = weight(name, "kernel")  # (in, out)
        if target == "head_layers.0" and config.uses_image:
            n_image = config.image_out
            kernel = np.concatenate([kernel[:n_image][_flatten_permutation(config)],
                                     kernel[n_image:]])
        state[f"{target}.weight"] = kernel.T
        state[f"{target}.bias"] = weight(name, "bias")
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}


def import_keras(src: str | Path, out: str | Path, *, model_version: str | None = None,
                 overwrite: bool = False) -> Path:
    """Convert a Keras SavedModel directory into a brightscan model directory.

    Parameters
    ----------
    src : str or Path
        The SavedModel directory (with ``keras_metadata.pb`` and ``variables/``).
    out : str or Path
        Model directory to write.
    model_version : str, optional
        Version stamped on scores; default the source directory's name (e.g. ``v1.0.1``).
    overwrite : bool
        Replace an existing model in ``out``.

    Returns
    -------
    Path
        ``out``.
    """
    from brightscan.model.io import save_model

    src = Path(src)
    graph = read_keras_metadata(src)
    config = match_preset(keras_architecture(graph))
    state = keras_to_torch(graph, read_checkpoint(src / "variables" / "variables"), config)
    model = MultiInputCNN(config)
    expected = {k for k, v in model.state_dict().items() if v.is_floating_point()}
    if set(state) != expected:
        raise ModelFileError(f"Keras weights do not cover the model: {sorted(expected ^ set(state))}")
    model.load_state_dict(state, strict=False)
    provenance = {"imported_from": str(src.resolve()), "source_format": "Keras SavedModel",
                  "keras_version": graph.keras_version, "keras_model_name": graph.name}
    return save_model(model.eval(), out, model_version=model_version or src.name,
                      provenance=provenance, overwrite=overwrite)
