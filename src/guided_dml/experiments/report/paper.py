"""The paper's published numbers (G-DML paper, Tables 1-3: mean and 95 % CI over 10 runs).

``PAPER_RESULTS[dataset][method][metric]`` is a published mean in percent and
``PAPER_CI[dataset][method][metric]`` the half width of its 95 % CI, keyed by the metric names of
``metrics.json`` (the paper's "MAP@1" column is MAP@R). A cell may be missing: the tables show it
as ``–`` and the Recall@1 figure draws no marker for it, so a table column the paper did not
publish needs no entry here.
"""

from __future__ import annotations

#: How many runs each published number is the mean of.
PAPER_RUNS = 10

#: The published means, in percent.
PAPER_RESULTS: dict[str, dict[str, dict[str, float]]] = {
    "mnist": {
        "siamese": {"recall@1": 98.27, "f1": 98.27, "nmi": 95.16, "r_precision": 97.88, "map@r": 97.73},
        "triplet": {"recall@1": 97.71, "f1": 97.71, "nmi": 90.98, "r_precision": 96.60, "map@r": 96.02},
        "margin": {"recall@1": 98.81, "f1": 98.81, "nmi": 91.56, "r_precision": 95.08, "map@r": 96.17},
        "multisim": {"recall@1": 98.58, "f1": 98.58, "nmi": 90.54, "r_precision": 91.28, "map@r": 90.12},
        "gdml": {"recall@1": 99.00, "f1": 99.00, "nmi": 92.08, "r_precision": 98.56, "map@r": 98.38},
    },
    "fashion-mnist": {
        "siamese": {"recall@1": 83.96, "f1": 82.89, "nmi": 76.22, "r_precision": 80.77, "map@r": 75.35},
        "triplet": {"recall@1": 83.86, "f1": 83.90, "nmi": 75.64, "r_precision": 78.69, "map@r": 72.07},
        "margin": {"recall@1": 87.75, "f1": 87.76, "nmi": 79.28, "r_precision": 83.40, "map@r": 79.91},
        "multisim": {"recall@1": 90.33, "f1": 90.35, "nmi": 77.30, "r_precision": 80.58, "map@r": 77.27},
        "gdml": {"recall@1": 91.93, "f1": 91.91, "nmi": 79.42, "r_precision": 89.06, "map@r": 87.93},
    },
    "cifar10": {
        "siamese": {"recall@1": 25.32, "f1": 25.96, "nmi": 25.17, "r_precision": 24.22, "map@r": 11.76},
        "triplet": {"recall@1": 41.93, "f1": 42.12, "nmi": 39.43, "r_precision": 36.65, "map@r": 20.03},
        "margin": {"recall@1": 55.71, "f1": 55.86, "nmi": 45.15, "r_precision": 40.90, "map@r": 24.73},
        "multisim": {"recall@1": 56.65, "f1": 57.04, "nmi": 47.51, "r_precision": 47.72, "map@r": 36.04},
        "gdml": {"recall@1": 80.11, "f1": 80.09, "nmi": 61.36, "r_precision": 75.98, "map@r": 73.93},
    },
}

#: The half widths of the published 95 % CIs, in percentage points; same keys as
#: :data:`PAPER_RESULTS`.
PAPER_CI: dict[str, dict[str, dict[str, float]]] = {
    "mnist": {
        "siamese": {"recall@1": 0.10, "f1": 0.10, "nmi": 1.83, "r_precision": 0.16, "map@r": 0.17},
        "triplet": {"recall@1": 0.10, "f1": 0.10, "nmi": 1.40, "r_precision": 0.10, "map@r": 0.12},
        "margin": {"recall@1": 0.25, "f1": 0.25, "nmi": 1.90, "r_precision": 2.88, "map@r": 1.87},
        "multisim": {"recall@1": 0.19, "f1": 0.19, "nmi": 1.96, "r_precision": 1.19, "map@r": 1.35},
        "gdml": {"recall@1": 0.18, "f1": 0.18, "nmi": 1.80, "r_precision": 0.80, "map@r": 1.00},
    },
    "fashion-mnist": {
        "siamese": {"recall@1": 0.36, "f1": 2.27, "nmi": 1.40, "r_precision": 0.53, "map@r": 0.70},
        "triplet": {"recall@1": 0.20, "f1": 0.21, "nmi": 1.05, "r_precision": 0.23, "map@r": 0.28},
        "margin": {"recall@1": 0.77, "f1": 0.77, "nmi": 1.26, "r_precision": 2.66, "map@r": 3.59},
        "multisim": {"recall@1": 0.29, "f1": 0.28, "nmi": 1.24, "r_precision": 1.56, "map@r": 1.93},
        "gdml": {"recall@1": 0.18, "f1": 0.17, "nmi": 1.66, "r_precision": 0.64, "map@r": 0.66},
    },
    "cifar10": {
        "siamese": {"recall@1": 1.53, "f1": 1.02, "nmi": 0.99, "r_precision": 1.07, "map@r": 4.73},
        "triplet": {"recall@1": 0.93, "f1": 0.95, "nmi": 0.71, "r_precision": 0.88, "map@r": 1.02},
        "margin": {"recall@1": 5.81, "f1": 5.84, "nmi": 2.65, "r_precision": 3.00, "map@r": 3.40},
        "multisim": {"recall@1": 6.15, "f1": 6.22, "nmi": 4.98, "r_precision": 5.96, "map@r": 7.31},
        "gdml": {"recall@1": 0.72, "f1": 0.72, "nmi": 2.31, "r_precision": 0.98, "map@r": 1.03},
    },
}


def paper_cell(dataset: str, method: str, metric: str) -> tuple[float, float | None] | None:
    """``(mean, ci)`` the paper published for one cell (``ci`` None when only the mean is
    published), or None when it published no number there."""
    mean = PAPER_RESULTS.get(dataset, {}).get(method, {}).get(metric)
    if mean is None:
        return None
    return mean, PAPER_CI.get(dataset, {}).get(method, {}).get(metric)
