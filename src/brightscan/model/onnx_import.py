"""Import an ONNX file in a BTSbot broker convention back into a brightscan model directory.

The import *converts*: it finds the registered architecture whose parameters the graph holds, copies
the graph's weights into that torch network, and then proves the conversion by running both the
ONNX graph (ONNX Runtime) and the rebuilt network on the same seeded inputs; any difference above
1e-4 refuses the file. The result is an ordinary model directory (safetensors + card), so
``score``, ``evaluate``, ``autoscan``, ``--compare``, precision judging and fine-tuning use it as
any other model, and nothing at scoring time depends on ONNX Runtime.

How the weights are found (the exporters brightscan and btsbot use keep module paths):

1. initializers by name (``model.`` or no prefix), through the ``Identity`` nodes the exporter
   adds when it stores one tensor for several equal parameters;
2. a parameter the exporter renamed while folding a reshape (ConvNeXt's layer scale ``gamma``) by
   the node scope of its module (``/model/backbone/stages/stages.0/...``): the one unnamed
   constant of the right size used by a node of that scope.

Which architecture: the ``config`` the file's metadata carries (brightscan's exports write it),
else every registered preset that fits the graph's inputs is tried. A graph matching none (a
foreign network, a Keras file converted by tf2onnx, a network whose BatchNorms the exporter fused
into its convolutions) is refused with the tensors that could not be placed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brightscan.errors import BrightscanError, ModelFileError

__all__ = ["OnnxGraph", "import_onnx", "read_onnx_graph"]

#: Largest ONNX file read (the biggest BTSbot network, MaxViT-tiny, is ~120 MB in fp32).
MAX_ONNX_BYTES = 1 << 30
#: Largest |difference| between the graph and the rebuilt network accepted.
TOLERANCE = 1e-4
_PREFIXES = ("model.", "")


@dataclass(frozen=True)
class OnnxGraph:
    """What the import reads of an ONNX file."""

    path: Path
    convention: str  # "btsbot-v2" or "btsbot-v1"
    inputs: dict[str, list[Any]]  # input name -> shape (ints or symbolic batch)
    output: str
    tensors: dict[str, np.ndarray]  # initializer / Identity alias / Constant output -> value
    node_constants: list[tuple[str, str]]  # (node name, unnamed constant input) in graph order
    props: dict[str, str]  # metadata_props

    @property
    def image_input(self) -> str | None:
        return next((n for n in ("image", "triplet") if n in self.inputs), None)

    @property
    def n_features(self) -> int | None:
        shape = self.inputs.get("metadata")
        return shape[1] if shape and isinstance(shape[1], int) else None


def _shape(value_info) -> list[Any]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]


def _convention(path: Path, inputs: dict[str, list[Any]], outputs: list[str]) -> str:
    names = set(inputs)
    if outputs == ["logits"] and names and names <= {"image", "metadata"}:
        image = inputs.get("image")
        if image is None or (len(image) == 4 and image[1] == 3):
            return "btsbot-v2"
    if outputs == ["fc_out"] and names and names <= {"triplet", "metadata"}:
        triplet = inputs.get("triplet")
        if triplet is None or (len(triplet) == 4 and triplet[3] == 3):
            return "btsbot-v1"
    found = ", ".join(f"{n} {s}" for n, s in inputs.items()) or "no inputs"
    raise ModelFileError(
        f"{path} is not a BTSbot ONNX model: its inputs are {found} and its outputs {', '.join(outputs)}; "
        "brightscan imports btsbot-v2 (image (N,3,H,W) and/or metadata (N,F) -> logits) or btsbot-v1 "
        "(triplet (N,H,W,3) and/or metadata (N,F) -> fc_out)")


def read_onnx_graph(path: str | Path) -> OnnxGraph:
    """Read and classify an ONNX file.

    Raises
    ------
    ModelFileError
        Too large, not ONNX, or not in a BTSbot convention.
    """
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise ModelFileError(f"{path} is {size / 2**20:.0f} MiB, above the {MAX_ONNX_BYTES >> 20} MiB an import reads")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others without a common base
        raise ModelFileError(f"{path} is not a readable ONNX file: {type(exc).__name__}: {exc}") from None
    graph = proto.graph
    init_names = {i.name for i in graph.initializer}
    inputs = {i.name: _shape(i) for i in graph.input if i.name not in init_names}
    convention = _convention(path, inputs, [o.name for o in graph.output])
    tensors = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    node_constants = []
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Identity" and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]]
        else:
            node_constants += [(node.name, i) for i in node.input if i in tensors]
    props = {p.key: p.value for p in proto.metadata_props}
    return OnnxGraph(path, convention, inputs, graph.output[0].name, tensors, node_constants, props)


def _scope(module_path: str, root: str) -> str:
    """The TorchScript exporter's node scope of a module: ``a.b.0.c`` -> ``/root/a/b/b.0/c/``."""
    parts, previous = [root] if root else [], ""
    for part in module_path.split("."):
        parts.append(f"{previous}.{part}" if part.isdigit() else part)
        previous = part if not part.isdigit() else previous
    return "/" + "/".join(parts) + "/"


def _by_scope(graph: OnnxGraph, key: str, numel: int) -> np.ndarray | None:
    module, _, _ = key.rpartition(".")
    for root in ("model", ""):
        scope = _scope(module, root)
        found = [graph.tensors[name] for node, name in graph.node_constants
                 if node.startswith(scope) and "/" not in node[len(scope):]
                 and name.startswith("onnx::") and graph.tensors[name].size == numel]
        if len(found) == 1:
            return found[0]
    return None


def _state_from_graph(graph: OnnxGraph, model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The network's float tensors taken from the graph, and the keys that could not be placed."""
    state, missing = {}, []
    for key, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            continue
        value = next((graph.tensors[p + key] for p in _PREFIXES if p + key in graph.tensors), None)
        if value is None:
            value = _by_scope(graph, key, tensor.numel())
        if value is None or value.size != tensor.numel() or (value.shape != tuple(tensor.shape)
                                                            and value.ndim == tensor.ndim):
            missing.append(f"{key} {tuple(tensor.shape)}")
            continue
        state[key] = torch.from_numpy(np.array(value, dtype=np.float32).reshape(tuple(tensor.shape)))
    return state, missing


def _fits(config, graph: OnnxGraph) -> bool:
    if (graph.image_input is not None) != config.uses_image or ("metadata" in graph.inputs) != config.uses_features:
        return False
    if graph.n_features is not None and config.uses_features and graph.n_features != config.n_features:
        return False
    image = graph.inputs.get(graph.image_input) if graph.image_input else None
    side = image[2] if image else None
    return not (isinstance(side, int) and side != config.image_size)


def _candidates(graph: OnnxGraph) -> list:
    from brightscan.errors import ConfigError
    from brightscan.model.registry import config_from_dict, get_config, list_presets

    stored = graph.props.get("config")
    if stored:
        try:
            return [config_from_dict(json.loads(stored))]
        except (ConfigError, json.JSONDecodeError, TypeError) as exc:
            raise ModelFileError(f"{graph.path}: its metadata 'config' is not a brightscan config: {exc}") from None
    return [c for c in (get_config(p) for p in list_presets()) if _fits(c, graph)]


def _temperature(graph: OnnxGraph) -> float:
    """The calibration temperature the file states (v1 applies it inside, v2 leaves it to the loader)."""
    try:
        value = float(graph.props.get("calibration_temperature", "1.0"))
    except ValueError:
        raise ModelFileError(f"{graph.path}: calibration_temperature {graph.props['calibration_temperature']!r} "
                             "is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise ModelFileError(f"{graph.path}: calibration_temperature {value} is not a positive number")
    return value


def _check_against_graph(graph: OnnxGraph, model: torch.nn.Module, temperature: float, seed: int = 0) -> float:
    """Largest |graph - network| on seeded inputs (logits for v2, calibrated sigmoids for v1)."""
    import onnxruntime as ort

    config = model.config
    rng = np.random.default_rng(seed)
    side, channels = config.image_size, config.image_channels
    triplets = rng.normal(0.0, 0.3, (4, side, side, channels)).astype(np.float32)
    features = rng.normal(0.0, 1.0, (4, config.n_features)).astype(np.float32)
    feed = {}
    if config.uses_image:
        feed[graph.image_input] = (np.ascontiguousarray(triplets.transpose(0, 3, 1, 2))
                                   if graph.image_input == "image" else triplets)
    if config.uses_features:
        feed["metadata"] = features
    try:
        session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
        expected = session.run([graph.output], feed)[0].reshape(-1)
    except Exception as exc:  # onnxruntime's errors share no base class
        raise ModelFileError(f"ONNX Runtime cannot run {graph.path}: {exc}") from None
    with torch.no_grad():
        logits = model(torch.from_numpy(triplets) if config.uses_image else None,
                       torch.from_numpy(features) if config.uses_features else None)
    got = logits if graph.convention == "btsbot-v2" else torch.sigmoid(logits / temperature)
    return float(np.max(np.abs(got.numpy().reshape(-1) - expected)))


def _convert(graph: OnnxGraph) -> tuple[torch.nn.Module, float]:
    from brightscan.model.registry import build_model

    candidates = _candidates(graph)
    temperature = _temperature(graph)
    tried = []
    for config in candidates:
        model = build_model(config).eval()
        state, missing = _state_from_graph(graph, model)
        if missing:
            tried.append(f"{config.preset}: {len(missing)} tensors not in the graph (e.g. {', '.join(missing[:3])})")
            continue
        model.load_state_dict(state, strict=False)
        difference = _check_against_graph(graph, model, temperature)
        if difference <= TOLERANCE:
            return model, temperature
        tried.append(f"{config.preset}: every tensor placed but outputs differ by {difference:.2g}")
    why = "; ".join(tried) or "no registered architecture takes these inputs"
    raise ModelFileError(
        f"{graph.path} ({graph.convention}) matches no brightscan architecture: {why}. An ONNX file "
        "converted from Keras (tf2onnx) is imported from its Keras SavedModel instead")


def import_onnx(src: str | Path, out: str | Path, *, model_version: str | None = None,
                overwrite: bool = False) -> Path:
    """Convert a BTSbot-convention ONNX file into the model directory ``out``.

    Parameters
    ----------
    src : str or Path
        An ``.onnx`` file, ``btsbot-v2`` or ``btsbot-v1``.
    out : str or Path
        Model directory to write.
    model_version : str, optional
        Default: the file's ``model_version`` property, else its file name.
    overwrite : bool
        Replace a model already in ``out``.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ModelFileError
        Not ONNX, not a BTSbot convention, no matching architecture, or a conversion whose scores
        differ from the graph's.
    """
    from brightscan.model.io import save_model, sha256_file

    src = Path(src)
    graph = read_onnx_graph(src)
    model, temperature = _convert(graph)
    _check_feature_order(graph, model.config)
    provenance = {"imported_from": str(src), "format": f"onnx {graph.convention}",
                  "source_weights_sha256": sha256_file(src),
                  "source_model": {k: graph.props[k] for k in ("model_id", "model_version", "weights_sha256")
                                   if k in graph.props}}
    try:
        return save_model(model, out, model_version=model_version or graph.props.get("model_version") or src.stem,
                          provenance=provenance, temperature=temperature, overwrite=overwrite)
    except BrightscanError as exc:
        raise ModelFileError(f"{src}: {exc}") from None


def _check_feature_order(graph: OnnxGraph, config) -> None:
    """A file that states its metadata columns must state this architecture's feature order."""
    from brightscan.preprocess import feature_set_names

    stated = graph.props.get("metadata_columns")
    if stated is None or not config.uses_features:
        return
    try:
        columns = json.loads(stated)
    except json.JSONDecodeError:
        raise ModelFileError(f"{graph.path}: metadata_columns is not a JSON list") from None
    expected = list(feature_set_names(config.feature_set))
    if columns != expected:
        raise ModelFileError(f"{graph.path}: its metadata columns {columns} are not feature set "
                             f"{config.feature_set!r} in order ({expected}); scores would be wrong")
