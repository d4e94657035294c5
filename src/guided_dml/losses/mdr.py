"""Multi-level Distance Regularization (MDR).

Kim & Park, "Multi-level Distance Regularization for Deep Metric Learning", AAAI 2021
(arXiv:2102.04223), Section 3 (Eqs. 1–6); details as in the authors' code
(``kakaoenterprise/AAAI2021_MDR``, ``metric/loss.py`` and ``run.py``).

MDR pulls every pairwise distance of a batch towards the nearest of a few learnable *levels*
of a normalised distance, so that embeddings neither collapse nor spread without bound:

- ``D``: pairwise Euclidean distances of the batch embeddings, ``(B, B)``.
- ``μ, σ``: mean and unbiased standard deviation of all ``B²`` entries of ``D``, the zero
  diagonal **included** (as in the authors' ``dist_mat.view(-1).mean()/.std()``; it lowers μ by
  a factor ``(B−1)/B`` and raises σ slightly, a constant effect the levels absorb), detached.
- Momentum statistics (Eq. 2): ``M ← 0.9·M + 0.1·μ``, ``S ← 0.9·S + 0.1·σ``, initialised from the
  first batch and updated only in training mode.
- Normalised distance (Eq. 3) of each pair ``i ≠ j``: ``z_ij = (D_ij − M) / S``.
- Regulariser (Eq. 4): ``L_MDR = mean_{i≠j} min_k |z_ij − l_k|`` with levels ``l`` initialised to
  ``(−3, 0, 3)``; the gradient reaches the embeddings and, per pair, only the nearest level.
- Total (Eq. 6 and ``run.py``): ``L = L_metric + λ·L_MDR + ν·‖l‖²``, ν = 0.01.

The paper trains without L2 normalisation and divides the embeddings by the batch's mean
pairwise distance during training (its "Learning without L2 Norm"); :class:`WithMDR` does that
before the metric loss and MDR.

MDR is not offered as a pytorch-metric-learning ``embedding_regularizer``: PML would hand it the
un-normalised embeddings (the mean-distance scaling of the metric loss cannot be expressed
there) and multiply the level penalty by λ; :class:`WithMDR` composes the two explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ._distance import pairwise_euclidean
from .distillation import DistillationLoss

# Below this a mean distance or standard deviation is treated as zero (a collapsed batch).
_TINY = 1e-12


class MultiLevelDistanceRegularizer(nn.Module):
    """MDR: pull normalised pairwise distances to their nearest learnable level.

    Args:
        levels: initial levels, in units of the distance standard deviation (paper: −3, 0, 3).
        momentum: weight of the old statistics in the momentum update (paper: 0.9).
        nu: weight ν of the level penalty ``ν·‖levels‖²`` that keeps the levels from drifting
            apart without bound (paper: 0.01).

    Buffers (restored by ``load_state_dict``, so a resumed run continues the same statistics):
        ``running_mean`` (M), ``running_std`` (S), ``initialized`` (False until the first
        training batch).

    In eval mode the statistics are not updated; before any training batch the current batch's
    μ and σ are used. A batch of fewer than 2 samples has no pairs: the distance term is 0 and
    the statistics are left alone. A collapsed batch (all embeddings equal, σ = 0) gives z = 0
    instead of 0/0.

    Examples:
        >>> mdr = MultiLevelDistanceRegularizer()
        >>> emb = torch.randn(32, 128, requires_grad=True)
        >>> loss = mdr(emb)  # L_MDR + ν·‖levels‖²
        >>> loss.backward()
    """

    running_mean: Tensor
    running_std: Tensor
    initialized: Tensor

    def __init__(
        self,
        levels: Sequence[float] = (-3.0, 0.0, 3.0),
        momentum: float = 0.9,
        nu: float = 0.01,
    ) -> None:
        super().__init__()
        if len(levels) < 1:
            raise ConfigError("MDR needs at least one level")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"MDR momentum must lie in [0, 1), got {momentum}")
        if nu < 0:
            raise ConfigError(f"MDR nu must be >= 0, got {nu}")
        self.levels = nn.Parameter(torch.tensor([float(v) for v in levels]))
        self.momentum = momentum
        self.nu = nu
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_std", torch.ones(()))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _update_statistics(self, mean: Tensor, std: Tensor) -> None:
        mean = mean.to(self.running_mean.dtype)
        std = std.to(self.running_std.dtype)
        if not bool(self.initialized):
            self.running_mean.copy_(mean)
            self.running_std.copy_(std)
            self.initialized.fill_(True)
        else:
            self.running_mean.mul_(self.momentum).add_(mean, alpha=1.0 - self.momentum)
            self.running_std.mul_(self.momentum).add_(std, alpha=1.0 - self.momentum)

    def distance_loss(self, embeddings: Tensor) -> Tensor:
        """``L_MDR`` of a batch ``(B, D)`` (scalar); updates M and S in training mode."""
        b = embeddings.shape[0]
        if b < 2:
            return embeddings.new_zeros(())
        dist = pairwise_euclidean(embeddings)  # (B, B), zero diagonal
        # Statistics over all B² entries, diagonal included (authors' code), without gradient.
        mean, std = dist.detach().mean(), dist.detach().std()
        if self.training:
            self._update_statistics(mean, std)
        if bool(self.initialized):
            # Clones: the next training call updates the buffers in place, which must not alter
            # tensors this call's graph saved for backward.
            mean, std = self.running_mean.clone(), self.running_std.clone()
        rows, cols = torch.triu_indices(b, b, offset=1, device=embeddings.device)
        # Each unordered pair once: D is symmetric, so this is the mean over all i ≠ j.
        z = (dist[rows, cols] - mean) / std.clamp_min(_TINY)  # (P,), P = B(B−1)/2
        # min over levels routes each pair's gradient to its nearest level only.
        return (z[:, None] - self.levels[None, :]).abs().min(dim=1).values.mean()

    def level_penalty(self) -> Tensor:
        """``ν·‖levels‖²`` (scalar)."""
        return self.nu * self.levels.pow(2).sum()

    def forward(self, embeddings: Tensor) -> Tensor:
        """``L_MDR + ν·‖levels‖²`` for embeddings ``(B, D)``."""
        return self.distance_loss(embeddings) + self.level_penalty()

    def extra_repr(self) -> str:
        return f"levels={self.levels.tolist()}, momentum={self.momentum}, nu={self.nu}"


def mean_distance_normalize(embeddings: Tensor) -> Tensor:
    """``embeddings / mean_{i≠j} ‖e_i − e_j‖₂`` (not detached): ``(B, D) -> (B, D)``.

    The MDR authors' replacement for L2 normalisation: a scale-free embedding whose mean
    pairwise distance is 1. Batches of fewer than 2 samples, or collapsed batches (mean
    distance 0), are returned unchanged instead of divided by zero.
    """
    if embeddings.shape[0] < 2:
        return embeddings
    return embeddings / _mean_distance_scale(embeddings)


def _mean_distance_scale(embeddings: Tensor) -> Tensor:
    """``mean_{i≠j} ‖e_i − e_j‖₂`` of a batch of at least 2 (scalar, not detached); 1 when the
    batch has collapsed (mean distance 0)."""
    b = embeddings.shape[0]
    mean_d = pairwise_euclidean(embeddings).sum() / (b * (b - 1))  # the diagonal is 0
    # where (not an `if`) keeps the check on the device and the gradient through mean_d.
    return torch.where(mean_d > _TINY, mean_d, torch.ones_like(mean_d))


class WithMDR(nn.Module):
    """A metric loss plus Multi-level Distance Regularization.

    ``forward(embeddings, *args, **kwargs)`` computes, with ``e = embeddings / mean pairwise
    distance`` when ``normalize_by_mean_distance`` (else ``e = embeddings``)::

        base_loss(e, *args, **kwargs) + λ·L_MDR(e) + ν·‖levels‖²

    The level penalty ν·‖levels‖² is *not* scaled by λ, as in the paper's total loss and the
    authors' ``run.py`` (``lambda_mdr * mdr(e) + nu_mdr * levels.pow(2).sum()``).

    Args:
        base_loss: any loss taking the embeddings first: a PML loss (``loss(e, labels)``) or
            :class:`~guided_dml.losses.DistillationLoss` (``loss(e, targets)``).
        lam: weight λ of MDR (paper: 0.6 CUB-200, 0.2 Cars-196, 0.1 SOP and In-Shop).
        normalize_by_mean_distance: rescale the embeddings by their mean pairwise distance
            (the MDR authors' training recipe). Must be ``False`` for the distillation loss,
            whose targets are fixed coordinates that a rescaled student could not match; MDR's
            z-score is scale-free, so MDR itself does not need the rescaling.
        mdr: the regulariser, if not the default :class:`MultiLevelDistanceRegularizer`.

        miner: a PML miner, called on the same rescaled ``e`` as the loss
            (``base_loss(e, labels, miner(e, labels))``): mining on the raw output would pick
            pairs by distances on another scale than the one the loss and its margin see.
        momentum: weight of the old value in the running mean distance (below).

    Only ``embeddings`` is rescaled; the levels (and any learnable parameters of the base loss)
    are parameters of this module, so give ``WithMDR.parameters()`` to the optimiser.

    Eval mode: the MDR authors rescale in training only (their ``Embedding`` returns the raw
    output in ``eval()``, and retrieval is unchanged by a global scale). A validation *loss*
    still needs the training objective's scale, so in eval mode ``e`` is divided by the running
    mean (momentum 0.9, like MDR's own statistics) of the training batches' mean distance,
    buffer ``running_scale``, instead of by the validation batch's own: the validation loss then
    measures the model, not how the validation batch happens to be spread.

    Examples:
        >>> from pytorch_metric_learning.losses import TripletMarginLoss
        >>> loss_fn = WithMDR(TripletMarginLoss(margin=0.2), lam=0.6)
        >>> loss_fn(torch.randn(32, 64), torch.randint(0, 4, (32,))).shape
        torch.Size([])
    """

    def __init__(
        self,
        base_loss: Callable[..., Tensor],
        lam: float,
        normalize_by_mean_distance: bool = True,
        mdr: MultiLevelDistanceRegularizer | None = None,
        miner: Callable[..., Any] | None = None,
        momentum: float = 0.9,
    ) -> None:
        super().__init__()
        if lam < 0:
            raise ConfigError(f"MDR weight lambda must be >= 0, got {lam}")
        if normalize_by_mean_distance and isinstance(base_loss, DistillationLoss):
            raise ConfigError(
                "WithMDR around DistillationLoss needs normalize_by_mean_distance=False: "
                "the teacher targets are fixed coordinates"
            )
        self.base_loss = base_loss
        self.lam = lam
        self.normalize_by_mean_distance = normalize_by_mean_distance
        self.mdr = mdr if mdr is not None else MultiLevelDistanceRegularizer()
        self.miner = miner
        self.momentum = momentum
        self.register_buffer("running_scale", torch.ones(()))
        self.register_buffer("scale_initialized", torch.tensor(False))

    running_scale: Tensor
    scale_initialized: Tensor

    def _rescale(self, embeddings: Tensor) -> Tensor:
        if not self.normalize_by_mean_distance:
            return embeddings
        if self.training or not bool(self.scale_initialized):
            if embeddings.shape[0] < 2:
                return embeddings
            scale = _mean_distance_scale(embeddings)
            if self.training:
                with torch.no_grad():
                    value = scale.detach().to(self.running_scale.dtype)
                    if bool(self.scale_initialized):
                        self.running_scale.mul_(self.momentum).add_(value, alpha=1 - self.momentum)
                    else:
                        self.running_scale.copy_(value)
                        self.scale_initialized.fill_(True)
            return embeddings / scale
        return embeddings / self.running_scale.clamp_min(_TINY)

    def forward(self, embeddings: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """``embeddings (B, D)`` plus the base loss's other arguments ``->`` scalar."""
        e = self._rescale(embeddings)
        if self.miner is not None:
            base = self.base_loss(e, *args, self.miner(e, *args), **kwargs)
        else:
            base = self.base_loss(e, *args, **kwargs)
        return base + self.lam * self.mdr.distance_loss(e) + self.mdr.level_penalty()

    def extra_repr(self) -> str:
        return (f"lam={self.lam}, normalize_by_mean_distance={self.normalize_by_mean_distance}, "
                f"miner={type(self.miner).__name__ if self.miner is not None else None}")
