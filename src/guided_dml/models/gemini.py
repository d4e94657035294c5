"""GEMINI, the multi-stream teacher of Guided Deep Metric Learning.

Gonzalez-Zapata et al., "Guided Deep Metric Learning", CVPR Workshops 2022 (arXiv:2206.02029),
Section 3.1 and Eq. 2; architecture as in the authors' code (``G-DML/Guided-Deep-Metric-Learning``).

``G(x, c) = global(stream_c(x))``: one local *stream* per class, then one *global* component
shared by all classes. A sample goes only through the stream of its own class (the indicator of
Eq. 2), so GEMINI needs the label and can embed labelled training data only; a student network
learns to reproduce its output on unseen data.

Conv stream (authors' code, identical for every class)::

    Conv2d(C, 32, 5) → PReLU → MaxPool2d(2) → Conv2d(32, 64, 5) → PReLU → MaxPool2d(2) → flatten

giving 1024 features for 1×28×28 inputs and 1600 for 3×32×32. Without padding the stream needs
inputs of at least 16×16; for smaller images (the bundled 8×8 digits) both convolutions are
padded by 2 ("same" padding for a 5×5 kernel), giving 8 → 8 → 4 → 4 → 2, i.e. 64·2·2 = 256
features. ``padding=None`` picks 0 when the input allows it (the authors' stream) and 2 otherwise.

MLP stream (for ``(N, F)`` feature vectors)::

    flatten → Linear(F, 256) → PReLU → Linear(256, 256) → PReLU

Global component: ``Linear(flat, 256) → PReLU → Linear(256, 256) → PReLU → Linear(256, d)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError, DataError

STREAMS: tuple[str, ...] = ("conv", "mlp")

_KERNEL = 5  # authors' stream: two 5×5 convolutions, each followed by a 2×2 max-pool
_SAME_PADDING = _KERNEL // 2


def conv_stream_output_size(size: int, padding: int) -> int:
    """Spatial size after the conv stream (conv 5×5 → pool 2 → conv 5×5 → pool 2); ``<= 0``
    when the input is too small."""
    for _ in range(2):
        size = size + 2 * padding - _KERNEL + 1
        if size < 2:
            return 0
        size //= 2
    return size


def _mlp(sizes: Sequence[int], final_activation: bool) -> list[nn.Module]:
    """``Linear → PReLU`` between consecutive ``sizes``; the last PReLU only if asked."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if final_activation or i < len(sizes) - 2:
            layers.append(nn.PReLU())
    return layers


class Gemini(nn.Module):
    """The GEMINI teacher: one stream per class, then a shared global component.

    Args:
        num_classes: number of classes C (one stream each).
        input_shape: shape of one sample, ``(C_in, H, W)`` for ``stream="conv"``; any shape for
            ``stream="mlp"`` (it is flattened, so ``(F,)`` for feature vectors).
        out_dim: embedding dimension d (2 in the paper).
        stream: ``"conv"`` (the authors' stream) or ``"mlp"`` (for feature vectors).
        hidden: widths of the global component's hidden layers (authors: ``(256, 256)``).
        padding: padding of both conv-stream convolutions; ``None`` = 0 when the input is at least
            16×16 (the authors' stream), else 2. Ignored for the mlp stream.
        mlp_hidden: widths of the mlp stream's layers; the last is the local dimension.

    Attributes:
        local_dim: size of the flattened local representation ``h = stream_c(x)``, found by a dry
            run of one stream (1024 for 1×28×28, 1600 for 3×32×32).

    Examples:
        >>> g = Gemini(10, (1, 28, 28), out_dim=2)
        >>> out, local = g(torch.zeros(4, 1, 28, 28), torch.tensor([0, 3, 3, 0]))
        >>> out.shape, local.shape
        (torch.Size([4, 2]), torch.Size([4, 1024]))
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        out_dim: int = 2,
        stream: str = "conv",
        hidden: Sequence[int] = (256, 256),
        padding: int | None = None,
        mlp_hidden: Sequence[int] = (256, 256),
    ) -> None:
        super().__init__()
        if stream not in STREAMS:
            choices = ", ".join(STREAMS)
            raise ConfigError(f"unknown GEMINI stream {stream!r}; choose one of {choices}")
        if num_classes < 1 or out_dim < 1:
            raise ConfigError(
                f"GEMINI needs num_classes >= 1 and out_dim >= 1, got {num_classes} and {out_dim}"
            )
        if any(h < 1 for h in hidden) or not mlp_hidden or any(h < 1 for h in mlp_hidden):
            raise ConfigError("GEMINI hidden widths must be positive (and mlp_hidden non-empty)")
        self.num_classes = num_classes
        self.input_shape = tuple(int(s) for s in input_shape)
        self.out_dim = out_dim
        self.stream_kind = stream
        self.padding: int | None = None

        if stream == "conv":
            self.padding = self._choose_padding(padding)
            make_stream = self._conv_stream
        else:
            in_features = math.prod(self.input_shape)
            if in_features < 1:
                raise ConfigError(f"GEMINI mlp stream needs a non-empty input_shape: {input_shape}")
            sizes = (in_features, *mlp_hidden)

            def make_stream() -> nn.Sequential:
                return nn.Sequential(nn.Flatten(), *_mlp(sizes, final_activation=True))

        self.streams = nn.ModuleList(make_stream() for _ in range(num_classes))
        with torch.no_grad():
            # Dry run of one stream on a single zero sample: the flattened size, whatever the input.
            self.local_dim = int(self.streams[0](torch.zeros(1, *self.input_shape)).shape[1])
        self.global_net = nn.Sequential(*_mlp((self.local_dim, *hidden, out_dim), False))

    def _choose_padding(self, padding: int | None) -> int:
        if len(self.input_shape) != 3:
            raise ConfigError(
                f"GEMINI conv stream needs input_shape (C, H, W), got {self.input_shape}; "
                "use stream='mlp' for feature vectors"
            )
        smallest = min(self.input_shape[1:])
        if padding is None:
            padding = 0 if conv_stream_output_size(smallest, 0) >= 1 else _SAME_PADDING
        if padding < 0 or conv_stream_output_size(smallest, padding) < 1:
            raise ConfigError(
                f"GEMINI conv stream cannot process {self.input_shape[1]}×{self.input_shape[2]} "
                f"inputs with padding {padding} (needs >= 16×16 unpadded, >= 4×4 with padding 2); "
                "use stream='mlp'"
            )
        return padding

    def _conv_stream(self) -> nn.Sequential:
        c, p = self.input_shape[0], self.padding
        return nn.Sequential(
            nn.Conv2d(c, 32, _KERNEL, padding=p),
            nn.PReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, _KERNEL, padding=p),
            nn.PReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )

    def forward_class(self, x: Tensor, c: int) -> tuple[Tensor, Tensor]:
        """Embed a batch whose samples all belong to class ``c``.

        Shapes: ``x (N, *input_shape) -> (out (N, d), local (N, local_dim))``. This is what
        Algorithm 1 needs (anchors and positives share a class, negatives share another), and it
        avoids building a label tensor.
        """
        if not 0 <= c < self.num_classes:
            raise DataError(f"class {c} is out of range for GEMINI with {self.num_classes} classes")
        local = self.streams[c](x)
        return self.global_net(local), local

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Embed each sample through the stream of its own class, then the global component.

        Args:
            x: samples, ``(N, *input_shape)`` float.
            y: labels, ``(N,)`` integer in ``[0, num_classes)``.

        Returns:
            ``out (N, d) = global(h)`` and ``local h (N, local_dim) = stream_{y_i}(x_i)``, in the
            order of ``x``.

        Samples are grouped by class and each group runs through its stream in one call, so a
        batch holding two classes (one Algorithm-1 step) costs two stream calls, not N.
        """
        if y.dim() != 1 or y.shape[0] != x.shape[0]:
            raise DataError(
                f"GEMINI needs one label per sample: x has {x.shape[0]} samples, "
                f"labels have shape {tuple(y.shape)}"
            )
        if y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
            raise DataError(f"GEMINI labels must be integers, got {y.dtype}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise DataError(
                f"GEMINI labels must lie in [0, {self.num_classes}), "
                f"got values from {int(y.min())} to {int(y.max())}"
            )
        classes = torch.unique(y).tolist()
        if len(classes) <= 1:  # one class (or an empty batch): a single stream call
            return self.forward_class(x, classes[0] if classes else 0)
        parts, order = [], []
        for c in classes:
            idx = (y == c).nonzero(as_tuple=True)[0]
            parts.append(self.streams[c](x[idx]))
            order.append(idx)
        # parts are grouped by class; indexing with the inverse permutation restores x's order
        # (differentiable, unlike writing into a preallocated tensor in place).
        local = torch.cat(parts)[torch.argsort(torch.cat(order))]
        return self.global_net(local), local
