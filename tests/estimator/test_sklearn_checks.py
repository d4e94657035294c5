"""scikit-learn's own estimator checks on GuidedEmbedder (issue 14: scikit-learn citizenship).

The check instance trains tiny networks for one epoch, so the ~40 checks take seconds. Checks that
cannot apply to a supervised metric learner are expected failures, with the reason beside each.
"""

from __future__ import annotations

import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from guided_dml import GuidedEmbedder

# A fit of well under a second: the smoke preset, one epoch of teacher and student.
_CHECKED = GuidedEmbedder(preset="smoke", epochs=1, gemini_epochs=1, batch_size=8, random_state=0)

EXPECTED_FAILURES: dict[str, str] = {}


@parametrize_with_checks([_CHECKED], expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # near-chance notes on random data
        check(estimator)
