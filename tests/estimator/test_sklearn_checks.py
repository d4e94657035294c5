"""scikit-learn's own estimator checks on GuidedEmbedder (issue 14: scikit-learn citizenship).

The check instance trains tiny networks for one epoch, so the ~45 checks take about 20 s. Every
check passes (scikit-learn 1.9: one, the array-API check, skips itself without SCIPY_ARRAY_API);
a check that cannot apply to a supervised metric learner would go into EXPECTED_FAILURES with
the reason as its value.
"""

from __future__ import annotations

import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from guided_dml import GuidedEmbedder

# A fit of well under a second: the smoke preset, one epoch of teacher and student.
_CHECKED = GuidedEmbedder(preset="smoke", epochs=1, gemini_epochs=1, batch_size=8, random_state=0)

EXPECTED_FAILURES: dict[str, str] = {}  # check name -> why it cannot apply (none today)


@parametrize_with_checks([_CHECKED], expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # near-chance notes on random data
        check(estimator)
