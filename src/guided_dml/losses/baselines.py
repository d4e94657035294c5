"""Baseline metric losses and miners: thin adapters over pytorch-metric-learning (PML).

The G-DML paper took its baselines from PML (Musgrave et al., 2020, ref. [26] of the paper)
and trained them on random batches without a miner (paper, Section 4):

============  ==========================  ======================================================
name          PML class                   paper
============  ==========================  ======================================================
``siamese``   ``ContrastiveLoss``         Hadsell et al., CVPR 2006 (contrastive loss)
``triplet``   ``TripletMarginLoss``       Schroff et al., CVPR 2015 / Hoffer & Ailon 2015
``margin``    ``MarginLoss``              Wu et al., "Sampling Matters in Deep Embedding
                                          Learning", ICCV 2017, Eq. 4
``multisim``  ``MultiSimilarityLoss``     Wang et al., CVPR 2019, Eq. 12
============  ==========================  ======================================================

Defaults are PML's own, because the paper reports none of its own and used PML as is:

- ``siamese``: ``pos_margin=0, neg_margin=1`` — positives pulled together, negatives pushed to
  distance 1 on the unit sphere (where distances lie in [0, 2]).
- ``triplet``: ``margin=0.05``, all triplets of the batch — PML's value for L2-normalised
  embeddings. (The authors' own Triplet-Network script used ``torch.nn.TripletMarginLoss`` on
  raw embeddings with margin 3.0; pass ``normalize_embeddings=False, margin=3.0`` for that.)
- ``margin``: ``margin=0.2, beta=1.2, nu=0`` — the values of Wu et al. for normalised
  embeddings; β is fixed unless ``learn_beta=True`` is passed.
- ``multisim``: ``alpha=2, beta=50, base=0.5`` on cosine similarity — Wang et al.'s values.

Geometry: PML L2-normalises embeddings by default (``LpDistance(normalize_embeddings=True)``,
and ``CosineSimilarity`` for multi-similarity). ``normalize_embeddings=None`` keeps that
default (what the paper used, so its 2-D embeddings lie on a circle); ``True`` is the same;
``False`` uses the Euclidean distance of the raw embeddings (``LpDistance(normalize_embeddings=
False)``) for every loss, multi-similarity included — its ``base`` then is a distance rather than
a similarity threshold and its defaults need retuning.
"""

from __future__ import annotations

from typing import Any

from pytorch_metric_learning import distances, losses, miners
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.miners import BaseMiner

from ..errors import ConfigError
from ..methods import METHODS
from .sampling import DistanceWeightedPairMiner


def metric_losses() -> dict[str, type[BaseMetricLossFunction]]:
    """The PML class of every registered baseline (:data:`guided_dml.methods.METHODS`, read
    now: a method registered later is included)."""
    return {m.name: getattr(losses, m.pml_loss) for m in METHODS.values() if m.pml_loss is not None}


MINERS: dict[str, type[BaseMiner] | None] = {
    "none": None,  # the paper's setting: random batches, every pair/triplet used
    "multisim": miners.MultiSimilarityMiner,  # epsilon=0.1, Wang et al.'s pair mining
    "triplet": miners.TripletMarginMiner,  # margin=0.2, all margin-violating triplets
    "semihard": miners.TripletMarginMiner,  # with type_of_triplets="semihard" (FaceNet)
    # Wu et al. 2017 as the MDR authors sample: one negative per ordered positive pair.
    "distance-weighted": DistanceWeightedPairMiner,
}
#: How a loss averages its terms: PML's default reducer, or a plain mean over all of them.
REDUCERS = ("default", "mean")


def _distance_kwargs(normalize_embeddings: bool | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``distance=`` to pass to PML, or nothing to keep PML's default."""
    if normalize_embeddings is None or normalize_embeddings is True:
        # True equals PML's default for all four losses and miners: pass nothing, so a caller's
        # own ``distance=`` (if any) is used unchanged.
        return {}
    if "distance" in kwargs:
        raise ConfigError("pass either distance= or normalize_embeddings=False, not both")
    return {"distance": distances.LpDistance(normalize_embeddings=False)}


def build_metric_loss(
    name: str, *, normalize_embeddings: bool | None = None, **loss_kwargs: Any
) -> BaseMetricLossFunction:
    """Build the PML loss of the registered baseline ``name`` (:func:`metric_losses`).

    Args:
        name: ``"siamese"``, ``"triplet"``, ``"margin"`` or ``"multisim"``.
        normalize_embeddings: ``None``/``True``: PML's default (L2-normalised embeddings);
            ``False``: Euclidean distance on raw embeddings.
        **loss_kwargs: passed to the PML class (``margin=``, ``alpha=``, ``distance=``, ...).

    Returns:
        A PML loss called as ``loss(embeddings (N, d), labels (N,)) -> scalar``.

    Examples:
        >>> loss_fn = build_metric_loss("triplet", normalize_embeddings=False, margin=3.0)
        >>> loss_fn(torch.randn(32, 2), torch.randint(0, 4, (32,))).shape
        torch.Size([])
    """
    table = metric_losses()
    if name not in table:
        raise ConfigError(f"unknown metric loss {name!r}; choose one of {', '.join(table)}")
    kwargs = {**loss_kwargs, **_distance_kwargs(normalize_embeddings, loss_kwargs)}
    try:
        return table[name](**kwargs)
    except TypeError as exc:  # an unknown keyword for this loss
        raise ConfigError(f"bad option for metric loss {name!r}: {exc}") from exc


def build_miner(
    name: str, *, normalize_embeddings: bool | None = None, **miner_kwargs: Any
) -> BaseMiner | None:
    """Build the PML miner ``name`` (a key of :data:`MINERS`), or ``None`` for ``"none"``.

    Pass the loss's ``normalize_embeddings`` so that miner and loss measure the same distances.
    The miner is called as ``miner(embeddings, labels)`` and its output passed to the loss as
    ``loss(embeddings, labels, indices_tuple)``.
    """
    if name not in MINERS:
        raise ConfigError(f"unknown miner {name!r}; choose one of {', '.join(MINERS)}")
    miner_cls = MINERS[name]
    if miner_cls is None:
        return None
    kwargs = dict(miner_kwargs)
    if name != "distance-weighted":  # it measures on an L2-normalised copy, whatever the loss
        kwargs.update(_distance_kwargs(normalize_embeddings, miner_kwargs))
    if name == "semihard":
        kwargs.setdefault("type_of_triplets", "semihard")
    try:
        return miner_cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad option for miner {name!r}: {exc}") from exc
