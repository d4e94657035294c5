"""Embedding a whole data set with a trained network (eval mode, no gradients, batched)."""

from __future__ import annotations

import torch
from torch import nn

from .batches import to_unit_float


@torch.no_grad()
def embed(model: nn.Module, inputs: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``model`` applied to ``uint8 (N, C, H, W)`` images (scaled to [0, 1]) or ``(N, F)`` vectors.

    Returns ``(N, d)`` float32. The model is put in eval mode (BatchNorm uses its running
    statistics), the same preprocessing as training is applied (docs/design.md: one
    preprocessing, eval mode). Batches go to the model's device; the result is on the CPU.
    """
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    out = [model(to_unit_float(inputs[i : i + batch_size]).to(device)).float().cpu()
           for i in range(0, len(inputs), batch_size)]
    model.train(was_training)
    if not out:
        return torch.empty(0, 0)
    return torch.cat(out)
