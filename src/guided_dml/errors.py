"""User-facing errors.

Anything the user can fix (a missing file, bad input, a diverged run) raises a subclass of
:class:`GdmlError` whose message is one line saying what is wrong and what to do. The CLI prints
that line and exits non-zero without a traceback (unless ``--debug``).
"""

from __future__ import annotations


class GdmlError(Exception):
    """Base class of every error the user can act on."""


# DataError and ConfigError are also ValueErrors: bad data and bad parameters are what Python and
# scikit-learn (its estimator checks included) signal with ValueError.
class DataError(GdmlError, ValueError):
    """Missing, corrupt or unsuitable data."""


class ConfigError(GdmlError, ValueError):
    """An invalid option, preset or combination of options."""


class TrainingError(GdmlError):
    """A run that cannot go on (NaN loss, unrecoverable checkpoint, ...)."""


class OutputError(GdmlError):
    """An output file that must not or cannot be written (it exists, the disk is full, ...)."""
