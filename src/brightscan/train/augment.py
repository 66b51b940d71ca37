"""Batch augmentation: random 90-degree rotations and flips, as whole-tensor operations.

The eight symmetries of the square (4 rotations x optional flip) are drawn per alert from a
seeded :class:`torch.Generator`; each symmetry is applied once to the sub-batch that drew it, so
a batch costs at most eight tensor operations, never a Python loop over alerts. A random
rotation combined with random horizontal and vertical flips gives the same distribution (every
symmetry with probability 1/8), since a horizontal and a vertical flip together are a rotation
by 180 degrees.
"""

from __future__ import annotations

import torch

__all__ = ["augment_batch"]


def augment_batch(
    triplets: torch.Tensor,
    generator: torch.Generator,
    *,
    rotations: bool = True,
    flips: bool = True,
) -> torch.Tensor:
    """Randomly rotate/flip each image of a batch.

    Parameters
    ----------
    triplets : torch.Tensor
        ``(N, H, W, C)`` with ``H == W`` (channels last, as stored).
    generator : torch.Generator
        On the CPU; the draw is made there, so results do not depend on the device.
    rotations, flips : bool
        Which symmetries to draw from.

    Returns
    -------
    torch.Tensor
        A new ``(N, H, W, C)`` tensor; every image is a rotation/flip of its input (same norm).
    """
    if triplets.ndim != 4 or triplets.shape[1] != triplets.shape[2]:
        raise ValueError(f"expected (N, H, H, C) triplets, got {tuple(triplets.shape)}")
    n = triplets.shape[0]
    k = torch.randint(0, 4 if rotations else 1, (n,), generator=generator)
    flip = torch.randint(0, 2 if flips else 1, (n,), generator=generator)
    code = (k + 4 * flip).to(triplets.device)
    out = torch.empty_like(triplets)
    for value in torch.unique(code).tolist():
        mask = code == value
        part = triplets[mask]  # (n_c, H, W, C)
        if value >= 4:
            part = torch.flip(part, dims=(2,))  # horizontal flip (columns)
        out[mask] = torch.rot90(part, k=value % 4, dims=(1, 2))
    return out
