"""Distance-weighted triplet sampling as the MDR authors use it.

Wu et al., "Sampling Matters in Deep Embedding Learning", ICCV 2017, Section 4: on the unit
sphere in ``n`` dimensions the distance ``d`` between two random points has density
``q(d) ∝ d^{n−2} (1 − d²/4)^{(n−3)/2}``; drawing each negative with probability ``∝ 1/q(d)``
spreads the sampled negatives evenly over distances instead of concentrating them near
``√2``. Kim & Park (MDR, AAAI 2021) train their Triplet and Triplet + MDR rows with it
(``metric/pairsampler.py``, ``DistanceWeighted``):

- every ordered positive pair ``(a, p)``, ``a ≠ p``, exactly once;
- for each, one negative of ``a`` drawn with weight ``exp(log 1/q(d_an))``, the distances taken
  on an **L2-normalised copy** of the embeddings (whatever the loss itself sees), clamped below
  at ``cutoff = 0.5`` (high-variance weights near 0), and negatives at ``d ≥ 1.4``
  (``nonzero_loss_cutoff``: they give no loss) excluded;
- an anchor left with no allowed negative draws uniformly among all its negatives.

The result is a PML triplet ``indices_tuple`` ``(anchors, positives, negatives)``, so the miner
plugs into any PML triplet loss (with ``reducer=MeanReducer()`` for the authors' plain mean).
PML's own ``DistanceWeightedMiner`` draws a fixed number of triplets per *anchor* instead of one
per positive pair, hence this class.

One difference from the authors' code, on purpose: the row maximum that stabilises ``exp`` is
taken over the allowed negatives only. The normalised weights are the same; theirs become NaN
in more than 3 dimensions when two normalised points are antipodal (``log 0`` in the row max).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_metric_learning.miners import BaseMiner
from torch import Tensor


class DistanceWeightedPairMiner(BaseMiner):
    """One distance-weighted negative per ordered positive pair (Wu et al. 2017, Sec. 4).

    Args:
        cutoff: distances below are clamped to it before weighting (Wu et al.: 0.5).
        nonzero_loss_cutoff: negatives at this distance or beyond are never drawn (1.4).
        generator: the random source of the draws (``None``: torch's global one, so
            ``torch.manual_seed`` makes a run repeatable).

    Examples:
        >>> miner = DistanceWeightedPairMiner()
        >>> a, p, n = miner(torch.randn(12, 2), torch.arange(12) % 3)
        >>> len(a) == 12 * 3  # 12 anchors x 3 positives each
        True
    """

    def __init__(self, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4,
                 generator: torch.Generator | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cutoff = float(cutoff)
        self.nonzero_loss_cutoff = float(nonzero_loss_cutoff)
        self.generator = generator

    @torch.no_grad()
    def mine(self, embeddings: Tensor, labels: Tensor, ref_emb: Tensor, ref_labels: Tensor
             ) -> tuple[Tensor, Tensor, Tensor]:
        x = F.normalize(embeddings.detach().float(), dim=1)
        r = F.normalize(ref_emb.detach().float(), dim=1)
        n_dim = x.shape[1]
        dist = torch.cdist(x, r).clamp_min(self.cutoff)
        same = labels[:, None] == ref_labels[None, :]
        if ref_emb is embeddings:
            not_self = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        else:
            not_self = torch.ones_like(same)
        pos, neg = same & not_self, ~same
        # log 1/q(d) = (2 − n)·log d − ((n − 3)/2)·log(1 − d²/4); clamp keeps log finite at d = 2.
        log_w = (2.0 - n_dim) * dist.log() - ((n_dim - 3.0) / 2.0) * (
            1.0 - 0.25 * dist.square()).clamp_min(1e-12).log()
        allowed = neg & (dist < self.nonzero_loss_cutoff)
        log_w = log_w.masked_fill(~allowed, -torch.inf)
        row_max = log_w.max(dim=1, keepdim=True).values
        weight = (log_w - torch.where(torch.isfinite(row_max), row_max, 0.0)).exp()
        weight = torch.where(allowed, weight, 0.0)
        empty = weight.sum(dim=1, keepdim=True) == 0
        weight = torch.where(empty & neg, 1.0, weight)  # no allowed negative: uniform
        anchors, positives = pos.nonzero(as_tuple=True)
        rows = weight[anchors]
        usable = rows.sum(dim=1) > 0  # anchors without any negative give no triplet
        anchors, positives, rows = anchors[usable], positives[usable], rows[usable]
        if len(anchors) == 0:
            empty_idx = labels.new_zeros(0, dtype=torch.long)
            return empty_idx, empty_idx, empty_idx
        negatives = torch.multinomial(rows, 1, generator=self.generator).squeeze(1)
        return anchors, positives, negatives
