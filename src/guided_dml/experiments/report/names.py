"""Names, order and colours: how the report labels, sorts and colours methods and data sets.

Method display names, order and colours come from the registry
(:data:`guided_dml.methods.METHODS`), read at call time, so a method registered later
(:func:`guided_dml.methods.register_method`) is named, ordered and coloured like the others.
"""

from __future__ import annotations

import re

from ...methods import METHODS

#: The paper's data sets first, in its order; any other data set follows alphabetically.
DATASET_ORDER = ("mnist", "fashion-mnist", "cifar10")
DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                 "digits": "Digits (scikit-learn)", "cub200": "CUB-200-2011", "cars196": "Cars-196",
                 "sop": "Stanford Online Products", "inshop": "In-Shop Clothes"}
#: The reference rows of ``references.csv`` (:mod:`guided_dml.experiments.references`), as the
#: tables print them.
REFERENCE_NAMES = {"raw-1nn": "1-NN on raw pixels", "umap-2d": "Supervised UMAP 2-D"}
# One colour per base method in every figure (tab10); an +mdr variant keeps its base's colour
# and is drawn dashed / hatched, so "the same loss with and without MDR" reads at a glance.
_EXTRA_COLORS = ("tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")

_IMBALANCED = re.compile(r"^(.+)-imb(\d+(?:\.\d+)?)$")
_UNSEEN = re.compile(r"^(.+)-unseen(?:-([\d_-]+))?$")


def method_name(label: str) -> str:
    """Display name of a method label: ``gdml`` → ``G-DML``, ``triplet+mdr`` → ``Triplet + MDR``."""
    base, _, extra = label.partition("+")
    name = METHODS[base].display if base in METHODS else base
    return f"{name} + {extra.upper()}" if extra else name


def split_imbalance(dataset: str) -> tuple[str, float | None]:
    """``fashion-mnist-imb10`` → ``("fashion-mnist", 10.0)``: the long-tailed training variants
    of the sub-population shift experiment (``RunConfig.dataset_label``)."""
    m = _IMBALANCED.match(dataset)
    return (m.group(1), float(m.group(2))) if m else (dataset, None)


def split_unseen(dataset: str) -> tuple[str, str | None]:
    """``fashion-mnist-unseen`` → ``("fashion-mnist", "")``, ``cifar10-unseen-0_2`` →
    ``("cifar10", "0,2")``; ``(dataset, None)`` for the closed-set protocol."""
    m = _UNSEEN.match(dataset)
    return (m.group(1), (m.group(2) or "").replace("_", ",")) if m else (dataset, None)


def dataset_name(dataset: str) -> str:
    """Display name of a data set (``fashion-mnist`` → ``Fashion-MNIST``,
    ``mnist-imb10`` → ``MNIST, long-tailed ×10``, ``mnist-unseen`` → ``MNIST, unseen classes
    (class-disjoint)``)."""
    dataset, seen = split_unseen(dataset)
    base, ratio = split_imbalance(dataset)
    name = DATASET_NAMES.get(base, base)
    name = f"{name}, long-tailed ×{ratio:g}" if ratio is not None else name
    if seen is not None:
        name += (f", unseen classes (trained on classes {seen})" if seen
                 else ", unseen classes (class-disjoint: trained on the first half)")
    return name


def method_key(label: str) -> tuple[int, int, str]:
    """Sort key: base methods in the paper's order, then their ``+mdr`` variants, then the rest."""
    base, plus, _ = label.partition("+")
    order = list(METHODS)  # the registry's: the paper's rows, then registered methods
    rank = order.index(base) if base in METHODS else len(order)
    return (1 if plus else 0, rank, label)


def dataset_key(dataset: str) -> tuple[int, str, float]:
    """Sort key: the paper's data sets in its order, then the others alphabetically; a
    long-tailed variant right after its balanced data set, by increasing imbalance."""
    closed, seen = split_unseen(dataset)
    base, ratio = split_imbalance(closed)
    rank = DATASET_ORDER.index(base) if base in DATASET_ORDER else len(DATASET_ORDER)
    # The class-disjoint variant sorts after every closed-set table of its data set.
    return (rank, base, (ratio or 0.0) + (1e9 if seen is not None else 0.0))


def method_color(label: str) -> str:
    """A fixed colour per base method (shared by every figure)."""
    base = label.partition("+")[0]
    if base in METHODS:
        return METHODS[base].color
    return _EXTRA_COLORS[sum(map(ord, base)) % len(_EXTRA_COLORS)]
