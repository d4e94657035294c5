"""The guided student's loss (G-DML, Algorithm 2).

Gonzalez-Zapata et al., "Guided Deep Metric Learning", CVPR Workshops 2022 (arXiv:2206.02029),
Algorithm 2: the student ``f`` regresses the teacher's fixed embeddings ``t_i = G(x_i, y_i)``
(the reduced hypothesis space) with the mean Euclidean, not squared, distance::

    L = mean_i ‖f(x_i) − t_i‖₂
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import ConfigError
from ._distance import euclidean


class DistillationLoss(nn.Module):
    """Mean Euclidean distance between student embeddings and fixed teacher targets.

    Unlike the squared error, the Euclidean distance gives every sample a unit-size gradient,
    so far-off samples do not dominate the step. The gradient is 0 (finite) for a sample that
    hits its target exactly.

    Examples:
        >>> loss_fn = DistillationLoss()
        >>> loss_fn(torch.zeros(4, 2), torch.ones(4, 2))
        tensor(1.4142)
    """

    def forward(self, embeddings: Tensor, targets: Tensor) -> Tensor:
        """``embeddings (N, d)``, ``targets (N, d)`` (no gradient needed) ``->`` scalar."""
        if embeddings.shape != targets.shape:
            raise ConfigError(
                f"student embeddings {tuple(embeddings.shape)} and teacher targets "
                f"{tuple(targets.shape)} differ in shape; use the teacher's output dimension"
            )
        return euclidean(embeddings, targets).mean()
