"""The feature branch runs in float32 under any autocast, so bf16 training sees what scoring sees.

bf16 keeps 8 bits of mantissa: near 18.5 mag its step is 0.125 mag, larger than the 0.05 mag
change in ``peakmag_so_far`` used here, so a feature branch run under bf16 autocast would not see
the change at all.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brightscan.model import create_model, list_presets, load_model, save_model
from brightscan.preprocess import feature_names
from brightscan.score.backends import TorchBackend
from brightscan.train.loop import autocast, train_epoch

FEATURE_PRESETS = [p for p in list_presets() if create_model(p, device="cpu").config.uses_features]


def _two_alerts(n_features: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Two alerts alike but for ``peakmag_so_far`` = 18.50 and 18.55 (realistic raw features)."""
    rng = np.random.default_rng(3)
    triplets = rng.normal(0, 1, (2, 63, 63, 3)).astype(np.float32)
    triplets[1] = triplets[0]
    features = np.tile(rng.uniform(10, 300, n_features).astype(np.float32), (2, 1))
    features[:, index] = [18.5, 18.55]
    return triplets, features


def _feature_branch_outputs(model: torch.nn.Module, run) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    hook = model.feature_layers[-1].register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    try:
        run()
    finally:
        hook.remove()
    return seen


@pytest.mark.parametrize("preset", FEATURE_PRESETS)
def test_feature_branch_is_float32_under_bf16_autocast(preset: str) -> None:
    model = create_model(preset, seed=0, device="cpu")
    features = torch.from_numpy(_two_alerts(model.config.n_features, 0)[1])
    plain = model.forward_features(features)
    with autocast(torch.device("cpu"), "bf16"):
        under = model.forward_features(features)
    assert under.dtype == torch.float32
    assert torch.equal(plain, under)


def test_peakmag_change_seen_in_bf16_training_exactly_as_in_scoring(tmp_path) -> None:
    # icml2023's feature branch has no dropout and no BatchNorm: train and eval mode agree on it.
    model = create_model("mi_cnn.icml2023", seed=0, device="cpu")
    index = feature_names("icml2023").index("peakmag_so_far")
    triplets, features = _two_alerts(model.config.n_features, index)
    labels = np.array([1.0, 0.0], np.float32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    training = _feature_branch_outputs(model, lambda: train_epoch(
        model, [(triplets, features, labels)], optimizer, class_weights=(1.0, 1.0),
        device=torch.device("cpu"), augment=None, precision="bf16"))[0]
    save_model(model, tmp_path / "m")
    for precision in ("float32", "bfloat16"):
        backend = TorchBackend(load_model(tmp_path / "m", device="cpu"), precision)
        scoring = _feature_branch_outputs(backend.model, lambda: backend(triplets, features))[0]
        assert torch.equal(training, scoring), precision
    change = (training[1] - training[0]).abs().sum()
    assert change > 0  # the 0.05 mag step reaches the network (bf16 would round it away)
