"""The training steps: one batch in, one scalar loss out (what :class:`~.trainer.Trainer` calls).

Gonzalez-Zapata et al., "Guided Deep Metric Learning", CVPR Workshops 2022 (arXiv:2206.02029):

* :func:`gemini_step`: the GEMINI teacher on one class-pair batch, Eq. 5 (Algorithm 1);
* :func:`metric_step`: every network trained on embeddings, i.e. the G-DML student regressing
  GEMINI's targets (Algorithm 2) and the metric-learning baselines on their labels; it
  handles mixed precision, the memory layout and the global batch of a data-parallel run;
* :func:`three_forward_step`: the authors' triplet network (``--triplet-sampling
  class-pairs``, :mod:`.authors_triplet`), whose anchors, positives and negatives go through
  the network separately.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn

from . import distributed as dist

Autocast = Callable[[], AbstractContextManager[object]]


def gemini_step(
    teacher: nn.Module, loss_fn: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """Eq. 5 on one class-pair batch. ``teacher(x, y) -> (out (N, d), local (N, h))``.

    ``batch`` is ``(x (3B, ...), classes (3B,))`` of :class:`~.gemini.TripletBatches`: anchors,
    positives and negatives stacked (in that order), so the teacher runs once per step.
    """
    x, classes = batch
    out, local = teacher(x, classes)
    b = len(x) // 3
    return loss_fn(out[:b], out[b : 2 * b], out[2 * b :], local[:b], local[b : 2 * b])


def three_forward_step(net: Callable[[Tensor], Tensor], loss_fn: nn.Module,
                       batch: tuple[Tensor, Tensor],
                       autocast: Autocast | None = None) -> Tensor:
    """One step of the authors' triplet network: anchors, positives and negatives through
    ``net`` separately (three BatchNorm batches), then ``loss_fn(a, p, n)`` in float32.

    ``batch`` is ``(x (3B, ...), classes (3B,))`` of
    :class:`~.authors_triplet.FixedTripletBatches`; ``autocast`` (if given) opens the mixed
    precision context of each forward.
    """
    x, _ = batch
    b = len(x) // 3
    parts = []
    for k in range(3):
        if autocast is None:
            parts.append(net(x[k * b : (k + 1) * b]))
        else:
            with autocast():
                parts.append(net(x[k * b : (k + 1) * b]))
    return loss_fn(*(p.float() for p in parts))


def metric_step(
    net: Callable[[Tensor], Tensor],
    loss_fn: nn.Module,
    batch: tuple[Tensor, Tensor],
    *,
    miner: Callable[[Tensor, Tensor], object] | None = None,
    layout: torch.memory_format = torch.contiguous_format,
    autocast: Autocast = contextlib.nullcontext,
    three_forwards: bool = False,
) -> Tensor:
    """The loss of one batch ``(x, target)`` of the student (G-DML Algorithm 2) or a baseline.

    ``target`` is what ``loss_fn`` compares the embeddings with: GEMINI's 2-D targets
    ``t_i = G(x_i, y_i)`` for the G-DML student (its distillation loss, Algorithm 2), the class
    labels for a metric-learning baseline.

    Images (4-D ``x``) are put in ``layout`` (``torch.channels_last`` or the default), the
    network runs under ``autocast()`` (a mixed precision context; none by default), and the loss
    is computed in float32 on the whole global batch: inside a process group the embeddings and
    targets of every process are gathered (:func:`.distributed.gather_rows`; a no-op for one
    process). With a ``miner`` the loss gets its tuples, ``loss_fn(emb, target, miner(emb,
    target))``, as pytorch-metric-learning losses take them.

    ``three_forwards``: the authors' triplet network instead (``--triplet-sampling
    class-pairs``), :func:`three_forward_step` on the local batch (no gathering, no miner).

    Args:
        net: the network (under DistributedDataParallel in a process group).
        loss_fn: ``(embeddings (N, d), target (N, ...)[, tuples]) -> scalar``.
        batch: ``(x (N, ...), target (N, ...))`` of this process.
        miner: ``(embeddings, target) -> tuples``, or None.
        layout: memory format of image batches.
        autocast: a callable returning the context manager of the forward pass.
        three_forwards: run :func:`three_forward_step`.
    """
    x, target = batch
    if three_forwards:
        x = x.contiguous(memory_format=layout) if x.dim() == 4 else x
        return three_forward_step(net, loss_fn, (x, target), autocast)
    with autocast():
        emb = net(x.contiguous(memory_format=layout) if x.dim() == 4 else x)
    # Losses in float32 on the whole global batch (a no-op for one float32 process).
    emb, target = dist.gather_rows(emb.float(), target)
    if miner is not None:
        return loss_fn(emb, target, miner(emb, target))
    return loss_fn(emb, target)
