"""The plain triplet hinge of the G-DML authors' triplet baseline (``torch.nn.TripletMarginLoss``).

Schroff et al., "FaceNet", CVPR 2015, Eq. 1 with Euclidean (not squared) distances, as the
authors' ``G-DML/Triplet-Network`` scripts compute it: a mean over every triplet of the batch,
zeros included, on raw 2-D outputs with margin 3 (MNIST: 10). Its triplets come from
:class:`guided_dml.training.authors_triplet.FixedTripletBatches`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._distance import euclidean


class PlainTripletLoss(nn.Module):
    """``mean_i max(0, ‖a_i − p_i‖₂ − ‖a_i − n_i‖₂ + m)`` over every triplet, zeros included.

    ``torch.nn.TripletMarginLoss(margin, p=2)`` as the authors call it (Schroff et al. 2015's
    hinge), on raw embeddings; the distance has a zero gradient at zero distance instead of the
    NaN of their ``eps=0`` norm.
    """

    def __init__(self, margin: float = 3.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, anchors: Tensor, positives: Tensor, negatives: Tensor) -> Tensor:
        """``(B, d)`` each ``->`` scalar."""
        return torch.relu(euclidean(anchors, positives) - euclidean(anchors, negatives)
                          + self.margin).mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}"
