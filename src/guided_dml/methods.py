"""The one registry of training methods: G-DML and the metric-learning baselines.

Everything that needs to know the methods reads :data:`METHODS`: the CLI's choices and help,
the config validation, the factory that builds each loss, the baselines' loss table
(:func:`guided_dml.losses.metric_losses`) and the report's names, colours and row order. Adding
a pytorch-metric-learning baseline is one entry here plus its test (docs/architecture.md, "Where
to add a method"); ``tests/test_methods.py`` checks every entry against PML.

The entries are in the G-DML paper's table order (Tables 1-3: Siamese, Triplet, Margin,
Multi-Similarity, then G-DML), which is also the benchmark's run order.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Method:
    """One training method.

    Attributes:
        name: the key used in configs, run folders and on the command line.
        display: the name in tables and figures.
        color: its matplotlib colour in every figure (an ``+mdr`` variant keeps it, dashed).
        reference: the paper that defines its loss.
        pml_loss: the pytorch-metric-learning loss class (a name in
            ``pytorch_metric_learning.losses``), or None for a loss of this package.
        teacher: trains the GEMINI teacher first and distils its map (G-DML, Algorithm 1-2).
        normalizes: whether its loss compares L2-normalised embeddings by default (PML's
            default distance); the student then outputs unit vectors unless the user says
            otherwise (``--normalize-embeddings``).
    """

    name: str
    display: str
    color: str
    reference: str
    pml_loss: str | None
    teacher: bool
    normalizes: bool


_ENTRIES = (
    Method("siamese", "Siamese", "tab:blue", "Hadsell et al., CVPR 2006 (contrastive loss)",
           "ContrastiveLoss", teacher=False, normalizes=True),
    Method("triplet", "Triplet", "tab:orange", "Schroff et al., CVPR 2015; Hoffer & Ailon 2015",
           "TripletMarginLoss", teacher=False, normalizes=True),
    Method("margin", "Margin", "tab:green", "Wu et al., ICCV 2017, Eq. 4",
           "MarginLoss", teacher=False, normalizes=True),
    Method("multisim", "MultiSim", "tab:purple", "Wang et al., CVPR 2019, Eq. 12",
           "MultiSimilarityLoss", teacher=False, normalizes=True),
    # Regression onto GEMINI's coordinates (Eq. 3): the scale is the point, never normalised.
    Method("gdml", "G-DML", "tab:red", "Gonzalez-Zapata et al., CVPR-W 2022, Eq. 3",
           None, teacher=True, normalizes=False),
)

#: Every method by name, in the paper's table order (then any :func:`register_method`'s).
#: Read it at the time of use (never copy it at import), so a registered method is seen
#: everywhere.
METHODS: dict[str, Method] = {m.name: m for m in _ENTRIES}


def method_names() -> tuple[str, ...]:
    """The registered methods' names, in order (CLI choices, the benchmark's default grid)."""
    return tuple(METHODS)


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry, e.g. another pytorch-metric-learning loss::

        register_method(Method("lifted", "Lifted", "tab:brown", "Oh Song et al., CVPR 2016",
                               "GeneralizedLiftedStructureLoss", teacher=False, normalizes=True))

    after which ``gdml``'s training, benchmark and report take ``method="lifted"`` (its
    settings are PML's defaults unless a preset or the user sets them).

    Raises:
        ConfigError: the name is taken or does not fit in a run folder's name.
    """
    if method.name in METHODS:
        raise ConfigError(f"method {method.name!r} is already registered")
    if not method.name.isidentifier() or not method.name.islower():
        raise ConfigError(f"method names are lower-case identifiers, got {method.name!r}")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The registered method ``name``; a :class:`ConfigError` naming the choices otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


def trains_teacher(name: str) -> bool:
    """Whether method ``name`` trains the GEMINI teacher first (False for unknown names)."""
    method = METHODS.get(name)
    return method is not None and method.teacher
