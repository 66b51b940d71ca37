"""Batch augmentation: random 90-degree rotations and flips, as whole-tensor operations.

The eight symmetries of the square (4 rotations x optional flip) are drawn per alert from a
seeded :class:`torch.Generator`, never a Python loop over alerts. A random
rotation combined with random horizontal and vertical flips gives the same distribution (every
symmetry with probability 1/8), since a horizontal and a vertical flip together are a rotation
by 180 degrees. The whole batch is transformed by a single ``gather`` through precomputed pixel
permutations of the eight symmetries (masked sub-batch copies cost more than the convolutions
of small models).
"""

from __future__ import annotations

import functools

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
    n, side, _, channels = triplets.shape
    k = torch.randint(0, 4 if rotations else 1, (n,), generator=generator)
    flip = torch.randint(0, 2 if flips else 1, (n,), generator=generator)
    code = (k + 4 * flip).to(triplets.device)
    # One gather: each image's pixels are picked through its symmetry's pixel permutation.
    index = _pixel_maps(side, triplets.device)[code]  # (N, H*W)
    index = index.unsqueeze(-1).expand(n, side * side, channels)
    return triplets.reshape(n, side * side, channels).gather(1, index).view_as(triplets)


@functools.lru_cache(maxsize=8)
def _pixel_maps(side: int, device: torch.device) -> torch.Tensor:
    """(8, side*side) source-pixel index of each output pixel, for codes k + 4*flip."""
    grid = torch.arange(side * side).view(side, side)
    maps = []
    for code in range(8):
        part = torch.flip(grid, dims=(1,)) if code >= 4 else grid  # horizontal flip (columns)
        maps.append(torch.rot90(part, k=code % 4, dims=(0, 1)).reshape(-1))
    return torch.stack(maps).to(device)
