"""The GEMINI training loss (G-DML, Eq. 5, as the authors coded it).

Gonzalez-Zapata et al., "Guided Deep Metric Learning", CVPR Workshops 2022 (arXiv:2206.02029),
Eq. 5 and Algorithm 1; the weighting follows the authors' ``training_step``::

    L = (1 − β) · mean_i max(0, ‖G(a_i) − G(p_i)‖₂ − ‖G(a_i) − G(n_i)‖₂ + m)
        + β · mean_i ‖h(a_i) − h(p_i)‖₂

``G`` is GEMINI's global output and ``h`` the local (stream) representation of anchor and
positive, which share a class and hence a stream. The hinge separates classes in the output
space; the small β term pulls same-class samples together in the local space.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ._distance import euclidean


class GeminiLoss(nn.Module):
    """Triplet hinge on GEMINI's output plus a local anchor–positive pull (G-DML Eq. 5).

    Args:
        margin: hinge margin m. 3.0 is the authors' value on every data set; it is large
            because the output is not normalised (raw 2-D coordinates).
        beta: weight β of the local term, in ``[0, 1]``. Authors: 0.005 (MNIST, Fashion-MNIST),
            0.003 (CIFAR-10); small, because local distances are much larger than output ones.

    Distances are Euclidean (not squared) with a zero gradient at zero distance, so identical
    anchor and positive give a finite gradient (the authors' ``eps=0`` norms give NaN there).

    Examples:
        >>> loss_fn = GeminiLoss(margin=3.0, beta=0.005)
        >>> out_a, out_p, out_n = torch.randn(3, 8, 2).unbind(0)
        >>> local_a, local_p = torch.randn(2, 8, 1024).unbind(0)
        >>> loss_fn(out_a, out_p, out_n, local_a, local_p).shape
        torch.Size([])
    """

    def __init__(self, margin: float = 3.0, beta: float = 0.005) -> None:
        super().__init__()
        if margin < 0:
            raise ConfigError(f"GEMINI margin must be >= 0, got {margin}")
        if not 0.0 <= beta <= 1.0:
            raise ConfigError(f"GEMINI beta must lie in [0, 1], got {beta}")
        self.margin = margin
        self.beta = beta

    def forward(
        self, out_a: Tensor, out_p: Tensor, out_n: Tensor, local_a: Tensor, local_p: Tensor
    ) -> Tensor:
        """Scalar loss.

        Args:
            out_a, out_p, out_n: GEMINI outputs of anchors, positives, negatives, ``(B, d)``.
            local_a, local_p: local representations of anchors and positives, ``(B, h)``.
        """
        hinge = torch.relu(euclidean(out_a, out_p) - euclidean(out_a, out_n) + self.margin)  # (B,)
        local = euclidean(local_a, local_p)  # (B,)
        return (1.0 - self.beta) * hinge.mean() + self.beta * local.mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}, beta={self.beta}"
