"""BTSbot 2 networks against the authors' own code (btsbot 2.0.7 + timm) on real ZTF alerts.

Every registered BTSbot 2 preset gets seeded random weights with non-trivial BatchNorm running
statistics, LayerNorm affines and layer scales; btsbot's class of the same ``train_config`` loads
brightscan's state dict with ``strict=True``; both score the real alerts of ``../shared``
(prepared by brightscan's pipeline). No network: ``pretrained=False``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brightscan.alerts import read_alerts
from brightscan.model import create_model, list_presets
from brightscan.model.backbones import ConvNeXtBackbone, MaxViTBackbone
from brightscan.model.btsbot2 import Btsbot2Config
from brightscan.model.btsbot2.train_config import from_train_config, to_train_config
from brightscan.preprocess.pipeline import Pipeline
from tests.model.timm_import import import_timm_and_btsbot

BTSBOT2_PRESETS = [p for p in list_presets() if p.endswith(".btsbot2")]


@pytest.fixture(scope="module")
def real_inputs():
    from tests.conftest import require_shared

    chunk = Pipeline("v1").prepare(read_alerts(require_shared("data", "real-alerts", "ztf-avro")))
    assert len(chunk) >= 30, "expected the real alerts to be accepted by the pipeline"
    return chunk.triplet_array(), chunk.feature_array()


def perturb_statistics(model: torch.nn.Module, features: np.ndarray, seed: int) -> None:
    """Make every BatchNorm / LayerNorm / layer scale non-trivial, reproducibly.

    The features' BatchNorm gets statistics near the real features' own (so the logits stay in a
    range where scores are not all 0 or 1); the image BatchNorms random ones.
    """
    gen = torch.Generator().manual_seed(seed)
    mean = torch.from_numpy(features.mean(0)).double()
    var = torch.from_numpy(features.var(0)).double() + 1e-3
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                n = module.num_features
                module.running_mean.copy_(mean * (1 + 0.1 * torch.randn(n, generator=gen, dtype=torch.double)))
                module.running_var.copy_(var * (0.5 + torch.rand(n, generator=gen, dtype=torch.double)))
            elif isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.normal_(0.0, 0.2, generator=gen)
                module.running_var.uniform_(0.5, 2.0, generator=gen)
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                module.weight.normal_(1.0, 0.2, generator=gen)
                module.bias.normal_(0.0, 0.2, generator=gen)
        backbone = {id(m) for b in model.modules() if isinstance(b, (ConvNeXtBackbone, MaxViTBackbone))
                    for m in b.modules() if not _in_head(b, m)}
        for module in model.modules():
            # btsbot's own layers (heads, custom CNN, metadata MLP): torch's default init on
            # unit-norm cutouts gives nearly constant logits; a gain of 4 makes the inputs matter.
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and id(module) not in backbone:
                module.weight.mul_(4.0)
        for name, param in model.named_parameters():
            if name.endswith("gamma"):  # ConvNeXt layer scale: 1e-6 at init would hide the blocks
                param.uniform_(0.1, 1.0, generator=gen)


def _in_head(backbone: torch.nn.Module, module: torch.nn.Module) -> bool:
    return any(module is m for m in backbone.head.modules())


def btsbot_model(architectures, config: Btsbot2Config) -> torch.nn.Module:
    return getattr(architectures, config.model_name)(to_train_config(config))


@pytest.mark.slow
@pytest.mark.parametrize("preset", BTSBOT2_PRESETS)
def test_scores_equal_btsbot_2_0_7(preset, real_inputs):
    _timm, architectures = import_timm_and_btsbot()
    triplets, features = real_inputs
    ours = create_model(preset, seed=7, device="cpu")
    perturb_statistics(ours, features, seed=11)
    theirs = btsbot_model(architectures, ours.config)
    theirs.load_state_dict(ours.state_dict(), strict=True)  # btsbot's module structure, exactly
    theirs.eval()
    images = torch.from_numpy(np.ascontiguousarray(triplets.transpose(0, 3, 1, 2)))  # as btsbot feeds them
    inputs = {"image": images, "metadata": torch.from_numpy(features)}
    with torch.no_grad():
        if ours.config.uses_image and ours.config.uses_features:
            expected = theirs(inputs["image"], inputs["metadata"])
        else:
            expected = theirs(inputs["image"] if ours.config.uses_image else inputs["metadata"])
        got = ours(torch.from_numpy(triplets), torch.from_numpy(features))
    expected = expected.squeeze(1).numpy()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(torch.sigmoid(got).numpy(), 1 / (1 + np.exp(-expected)), atol=1e-5)
    # The alerts must move the logits well beyond the tolerance, or equality would prove little
    # (random-init MaxViT's pooled features vary least: a spread of ~5e-4, 50x the tolerance).
    assert expected.std() > 1e-4, "logits barely vary: the comparison would prove little"


@pytest.mark.parametrize("preset", BTSBOT2_PRESETS)
def test_train_config_round_trip(preset):
    config = create_model(preset, device="cpu").config
    back = from_train_config(to_train_config(config))
    assert back == config.replace(preset=back.preset) and back.preset == config.preset


@pytest.mark.slow
@pytest.mark.parametrize("kind, ours_name", [("convnext_pico", "convnext_pico"),
                                             ("maxvit_tiny_rw_224", "maxvit_tiny_rw")])
def test_backbones_equal_timm(kind, ours_name):
    timm, _architectures = import_timm_and_btsbot()
    from brightscan.model import backbones

    reference = timm.create_model(kind, pretrained=False).eval()
    mine = getattr(backbones, ours_name)()
    mine.head = reference.head  # timm's classifier, so the whole forward is compared
    perturb_statistics(reference, np.ones((2, 1), np.float32), seed=3)
    mine.load_state_dict(reference.state_dict(), strict=True)
    mine.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_allclose(mine(x).numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-5)
