"""guided-dml: Guided Deep Metric Learning, its baselines, and Multi-level Distance Regularization.

``guided_dml.GuidedEmbedder`` is the scikit-learn estimator (see :mod:`guided_dml.estimator`).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["GuidedEmbedder", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `import guided_dml` (and so `gdml --help`) must not pay for torch and scikit-learn.
    if name == "GuidedEmbedder":
        from .estimator import GuidedEmbedder

        return GuidedEmbedder
    raise AttributeError(f"module 'guided_dml' has no attribute {name!r}")
