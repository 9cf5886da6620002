"""Models already in a registry keep loading after plantlake's code moves (issue 9).

MLflow pickles the logged `RiskScoreModel` instance, which names its class by import path; a
registry's champion logged by an earlier release is unpickled with that path. The layout move
put the class under `plantlake.models.jobs` for a while, and `make demo` then failed to load the
champion an earlier demo had registered (ModuleNotFoundError: plantlake.models.pyfunc).
"""

import pickle

from plantlake.models.pyfunc import FAILURE, RiskScoreModel


def test_the_model_class_keeps_the_path_registered_models_name():
    assert RiskScoreModel.__module__ == "plantlake.models.pyfunc"


def test_a_model_pickled_under_that_path_loads():
    from sklearn.dummy import DummyClassifier

    estimator = DummyClassifier(strategy="prior").fit([[0.0], [1.0]], [0, 1])
    model = RiskScoreModel(estimator, kind=FAILURE, threshold=0.5)
    pickled = pickle.dumps(model)
    assert b"plantlake.models.pyfunc" in pickled
    assert isinstance(pickle.loads(pickled), RiskScoreModel)
