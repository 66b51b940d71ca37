"""The multi-input CNN (BTSbot): an image branch, a feature branch and a head giving one logit.

The model knows nothing of training, files or alerts. Inputs are what users store:

- ``triplet``: ``(N, 63, 63, 3)`` float32, channels last (science, reference, difference). It is
  viewed as NCHW inside with ``permute`` (no copy: the result is a channels-last NCHW tensor,
  which is also the layout oneDNN convolutions prefer on CPU).
- ``features``: ``(N, F)`` float32 in the order of ``config.feature_set``.

The output is a logit of shape ``(N,)``; the score is ``sigmoid(logit)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brightscan.model.config import ModelConfig

__all__ = ["MultiInputCNN"]


class MultiInputCNN(nn.Module):
    """Multi-input CNN built from a :class:`~brightscan.model.config.ModelConfig`.

    Parameters
    ----------
    config : ModelConfig
        Architecture; stored as ``self.config``.

    Notes
    -----
    Parameter names are stable (``convs.<i>``, ``feature_norm``, ``feature_layers.<i>``,
    ``head_layers.<i>``, ``output``) because saved weights and the Keras importer refer to them.
    ``flatten`` follows torch's NCHW order (channel, row, column); Keras flattens NHWC (row,
    column, channel), which the importer accounts for by permuting the first head layer's inputs.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.convs = nn.ModuleList()
        if config.uses_image:
            channels = config.image_channels
            for block in config.conv_filters:
                for filters in block:
                    self.convs.append(
                        nn.Conv2d(channels, filters, config.kernel_size, padding="same")
                    )
                    channels = filters
        self.feature_norm: nn.BatchNorm1d | None = None
        self.feature_layers = nn.ModuleList()
        if config.uses_features:
            if config.feature_batchnorm:
                # Keras momentum 0.99 == torch momentum 0.01 (weight of the new batch statistic).
                self.feature_norm = nn.BatchNorm1d(
                    config.n_features, eps=config.batchnorm_eps, momentum=0.01
                )
            width = config.n_features
            for units in config.feature_units:
                self.feature_layers.append(nn.Linear(width, units))
                width = units
        self.head_layers = nn.ModuleList()
        width = config.image_out + config.features_out
        for units in config.head_units:
            self.head_layers.append(nn.Linear(width, units))
            width = units
        self.output = nn.Linear(width, 1)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Glorot-uniform weights and zero biases (Keras' defaults), drawn from ``generator``."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight, generator=generator)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm1d):
                module.reset_parameters()

    def forward_image(self, triplet: torch.Tensor) -> torch.Tensor:
        """Image branch: ``(N, H, W, C)`` -> ``(N, image_out)``."""
        x = triplet.permute(0, 3, 1, 2)  # (N, C, H, W), channels-last in memory
        autocast = torch.is_autocast_enabled(x.device.type)
        convs = iter(self.convs)
        for block, pool, rate in zip(
            self.config.conv_filters, self.config.pool_sizes, self.config.conv_dropouts
        ):
            for _ in block:
                conv = next(convs)
                # Each conv runs in its own weights' dtype, so a reduced-precision image branch
                # (some convs in bf16, see Scorer) needs no other change; a no-op in float32.
                # Under autocast the activations stay bf16 between convs (no cast round trip).
                if not autocast:
                    x = x.to(conv.weight.dtype)
                x = F.relu(conv(x))
            x = F.max_pool2d(x, pool)  # floor: 63 -> 31 -> 7
            x = F.dropout(x, rate, self.training)
        return torch.flatten(x, 1).to(triplet.dtype)  # (N, C * side * side), NCHW order

    def forward_features(self, features: torch.Tensor) -> torch.Tensor:
        """Feature branch: ``(N, F)`` -> ``(N, features_out)``, always in float32.

        Autocast is switched off here, so bf16 training sees the same features as float32
        scoring: bf16 keeps 8 bits of mantissa, which rounds a magnitude near 18.5 to steps of
        0.125 mag and ``ra`` near 300 degrees to steps of 2 degrees. The branch is a few
        thousand multiply-adds per alert, so float32 costs nothing measurable.
        """
        with torch.autocast(features.device.type, enabled=False):
            x = features.float()
            if self.feature_norm is not None:
                x = self.feature_norm(x)
            last = len(self.feature_layers) - 1
            for i, layer in enumerate(self.feature_layers):
                x = F.relu(layer(x))
                if i < last:
                    x = F.dropout(x, self.config.feature_dropouts[i], self.training)
        return x

    def forward(
        self, triplet: torch.Tensor | None, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return logits of shape ``(N,)``.

        Parameters
        ----------
        triplet : torch.Tensor or None
            ``(N, 63, 63, 3)`` float32, channels last; ignored (may be None) for feature-only
            models.
        features : torch.Tensor or None
            ``(N, n_features)`` float32; ignored (may be None) for image-only models.
        """
        parts = []
        if self.config.uses_image:
            parts.append(self.forward_image(triplet))
        if self.config.uses_features:
            parts.append(self.forward_features(features))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.head_layers:
            x = F.dropout(F.relu(layer(x)), self.config.head_dropout, self.training)
        return self.output(x).squeeze(1)
