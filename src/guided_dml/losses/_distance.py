"""Euclidean distances whose gradient stays finite where the distance is zero.

``‖u‖₂ = sqrt(Σ u²)`` has derivative ``u / ‖u‖₂``, which is 0/0 at ``u = 0``: identical anchor and
positive (or a student output that hits its target exactly) would give NaN gradients and poison
the whole step. The helpers here take the square root only of strictly positive values and
return a zero gradient at zero distance (0 is a valid subgradient of the norm there).
"""

from __future__ import annotations

import torch
from torch import Tensor


def safe_sqrt(squared: Tensor) -> Tensor:
    """``sqrt`` of a non-negative tensor with gradient 0 (not inf/NaN) where it is 0."""
    positive = squared > 0
    # The inner where keeps sqrt's backward away from 0; the outer one puts the zeros back.
    return torch.where(positive, torch.where(positive, squared, 1.0).sqrt(), 0.0)


def euclidean(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise Euclidean distance ``‖a_i − b_i‖₂``: ``(N, D), (N, D) -> (N,)``."""
    return safe_sqrt((a - b).pow(2).sum(dim=-1))


def pairwise_euclidean(x: Tensor) -> Tensor:
    """All pairwise Euclidean distances ``D_ij = ‖x_i − x_j‖₂``: ``(B, D) -> (B, B)``.

    Computed from differences, not from the Gram matrix (``‖x‖² + ‖y‖² − 2xy``), so identical
    rows give exactly 0 instead of rounding noise; ``torch.cdist``'s backward returns a zero
    gradient at zero distance, the diagonal included.
    """
    return torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
