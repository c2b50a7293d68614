"""scikit-learn's own estimator contract checks, run on DeepSAD with tiny epochs.

scikit-learn's checks pass class labels (0, 1, 2, ...) as ``y``; DeepSAD's second argument is
``semi_targets`` in {-1, 0, +1}, so they cannot apply as they are. The adapter below runs the checks
on the unlabeled (Deep SVDD) path: everything except the meaning of ``semi_targets``, which
``test_estimator.py`` covers.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from deepsad_core import DeepSAD


class UnlabeledDeepSAD(DeepSAD):
    def fit(self, X, y=None):  # y is a class label in sklearn's checks: ignored
        return super().fit(X)


@parametrize_with_checks([UnlabeledDeepSAD(epochs=1, ae_epochs=1, batch_size=16)])
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)
