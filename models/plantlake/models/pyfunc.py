"""The MLflow model every plantlake model is logged as: feature rows in, one risk score out (models).

A scikit-learn estimator inside an `mlflow.pyfunc.PythonModel`, so the failure predictor
(probability of a failure within the horizon) and the anomaly detector (how unusual the row is)
both score as one double per row, higher meaning worse, through `mlflow.pyfunc.load_model` or
`mlflow.pyfunc.spark_udf(..., result_type="double")` alike. The alert threshold travels with
the model (and as the model version tag `alert_threshold`).

Registered models hold this class by its import path (MLflow pickles the instance): the module
stays `plantlake.models.pyfunc` so that every model already in a registry keeps loading.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from plantlake.models.logic.estimators import ANOMALY, FAILURE, risk_scores
from plantlake.pipelines.transforms.features import FEATURE_COLUMNS

__all__ = ["ANOMALY", "FAILURE", "RiskScoreModel"]


class RiskScoreModel(PythonModel):
    """`kind` is FAILURE (predict_proba of the positive class) or ANOMALY (-score_samples)."""

    def __init__(self, estimator, *, kind: str, threshold: float, features=FEATURE_COLUMNS):
        if kind not in (FAILURE, ANOMALY):
            raise ValueError(f"kind must be {FAILURE!r} or {ANOMALY!r}, got {kind!r}")
        self.estimator = estimator
        self.kind = kind
        self.threshold = float(threshold)
        self.features = tuple(features)

    def scores(self, rows: pd.DataFrame) -> np.ndarray:
        return risk_scores(self.estimator, self.kind, rows, self.features)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return self.scores(model_input)
