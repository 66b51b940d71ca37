"""Import the real ``timm`` (and ``btsbot``, which imports it) in the tests without torchvision.

timm imports torchvision at import time (``timm.layers`` for ``FrozenBatchNorm2d``, ``timm.data``
for its transforms and datasets), and PyPI's torchvision wheels do not load beside the CPU build
of torch used here. The model code the parity tests run (ConvNeXt, MaxxVit, their layers) never
calls torchvision, so a stand-in package is put in ``sys.modules`` *only when torchvision is
absent*: every name it is asked for at import is a placeholder that raises when used, so a test
that did reach torchvision would fail loudly rather than pass by accident.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import sys
import types

import pytest

_SUBMODULES = ("ops", "ops.misc", "transforms", "transforms.functional", "transforms.v2", "datasets",
               "models", "models.feature_extraction", "utils", "io")


class InterpolationMode(enum.Enum):
    """The names timm reads from ``torchvision.transforms.functional.InterpolationMode``."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _placeholder(qualname: str) -> type:
    def refuse(*_args, **_kwargs):
        raise RuntimeError(f"{qualname} is a test stand-in: torchvision is not installed here")

    return type(qualname.rsplit(".", 1)[-1], (), {"__init__": refuse, "__call__": refuse})


def _standin_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so submodule imports resolve through sys.modules
    module.__getattr__ = lambda attr: (  # type: ignore[method-assign]
        _raise_attr(name, attr) if attr.startswith("__") else _placeholder(f"{name}.{attr}"))
    return module


def _raise_attr(name: str, attr: str):
    raise AttributeError(f"module {name!r} has no attribute {attr!r}")


def _install_standin() -> None:
    root = _standin_module("torchvision")
    root.__version__ = "0.0.0+standin"
    sys.modules["torchvision"] = root
    for sub in _SUBMODULES:
        module = _standin_module(f"torchvision.{sub}")
        sys.modules[module.__name__] = module
        parent, _, leaf = module.__name__.rpartition(".")
        setattr(sys.modules[parent], leaf, module)
    sys.modules["torchvision.transforms.functional"].InterpolationMode = InterpolationMode
    sys.modules["torchvision.transforms"].InterpolationMode = InterpolationMode


def import_timm_and_btsbot() -> tuple[types.ModuleType, types.ModuleType]:
    """``(timm, btsbot.architectures)``, or skip the test saying which package is missing."""
    for package in ("timm", "btsbot"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (make test installs timm and btsbot==2.0.7 "
                        "with --no-deps for the parity tests)")
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        _install_standin()
    timm = importlib.import_module("timm")
    return timm, _load_architectures()


def _load_architectures() -> types.ModuleType:
    """``btsbot/architectures.py`` loaded as a file: the package's ``__init__`` imports its
    training and Hub helpers (``datasets``, ``huggingface_hub``), which the models do not need."""
    name = "btsbot_architectures_2"
    if name in sys.modules:
        return sys.modules[name]
    origin = importlib.util.find_spec("btsbot").submodule_search_locations[0]
    spec = importlib.util.spec_from_file_location(name, f"{origin}/architectures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
