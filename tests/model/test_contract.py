"""One contract over every registered preset, plus the registry and config rules."""

from __future__ import annotations

import pytest
import torch

from brightscan.errors import ConfigError
from brightscan.model import ModelConfig, create_model, get_config, list_presets, register_preset


def _inputs(config: ModelConfig, n: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    triplet = torch.randn(n, config.image_size, config.image_size, config.image_channels, generator=gen)
    features = torch.randn(n, config.n_features, generator=gen)
    return triplet, features


@pytest.mark.parametrize("preset", list_presets())
def test_preset_contract(preset):
    model = create_model(preset, seed=0, device="cpu")
    triplet, features = _inputs(model.config)
    logits = model(triplet, features)
    assert logits.shape == (4,)
    assert torch.isfinite(logits).all()
    model.train()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        model(triplet, features), torch.tensor([0.0, 1.0, 0.0, 1.0]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{preset}: {name} gets no gradient"
        assert torch.isfinite(param.grad).all(), f"{preset}: {name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{preset}: {name} has an all-zero gradient"


@pytest.mark.parametrize("preset", list_presets())
def test_unused_branch_input_may_be_none(preset):
    model = create_model(preset, seed=0, device="cpu")
    triplet, features = _inputs(model.config, n=2)
    out = model(triplet if model.config.uses_image else None,
                features if model.config.uses_features else None)
    assert out.shape == (2,)


def test_published_architectures_have_the_keras_sizes():
    # Keras' first head layer takes 1600 (v03) and 3264 (v1.0.1) inputs: pooling floors 63->31->7.
    icml, v1 = get_config("mi_cnn.icml2023"), get_config("mi_cnn.v1")
    assert icml.pooled_size == v1.pooled_size == 7
    assert icml.image_out + icml.features_out == 1600
    assert v1.image_out + v1.features_out == 3264
    assert (icml.n_features, v1.n_features) == (14, 25)
    assert get_config("mi_cnn.v1_image").branches == "image"
    assert get_config("mi_cnn.icml2023_features").image_out == 0


def test_seed_controls_initialisation():
    a, b = (create_model("mi_cnn.tiny", seed=1, device="cpu") for _ in range(2))
    c = create_model("mi_cnn.tiny", seed=2, device="cpu")
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ConfigError, match="mi_cnn.icml2023"):
        create_model("mi_cnn.nope")


def test_duplicate_registration_is_refused():
    with pytest.raises(ConfigError, match="already registered"):
        register_preset("mi_cnn.v1")(lambda: get_config("mi_cnn.v1"))


def test_config_round_trip_and_validation():
    config = get_config("mi_cnn.v1")
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert "recipe" not in config.to_dict()  # the model file describes the network only
    old_card = {**config.to_dict(), "recipe": {"learning_rate": 1e-4}}  # written before the recipe moved
    assert ModelConfig.from_dict(old_card) == config
    with pytest.raises(ConfigError, match="branches"):
        config.replace(branches="neither")
    with pytest.raises(ConfigError, match="unknown ModelConfig keys"):
        ModelConfig.from_dict({**config.to_dict(), "colour": "red"})
    with pytest.raises(ConfigError, match="dropout"):
        config.replace(head_dropout=1.5)
