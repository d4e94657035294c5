"""guided-dml: Guided Deep Metric Learning, its baselines, and Multi-level Distance Regularization."""

__version__ = "0.1.0"
