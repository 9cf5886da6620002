"""The two estimators plantlake trains and how they score (models, pure: scikit-learn only).

- The failure predictor: gradient-boosted trees, probability of a failure within the horizon.
- The anomaly detector: an Isolation Forest fitted on healthy rows; what it has not seen
  healthy is anomalous.
Both score feature rows as one double per row, higher meaning worse (`risk_scores`), which is
what `plantlake.models.pyfunc.RiskScoreModel` serves through MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline

from plantlake.pipelines.transforms.features import FEATURE_COLUMNS

FAILURE, ANOMALY = "failure", "anomaly"


def fit_failure_model(train: pd.DataFrame, *, seed: int = 7):
    """Gradient-boosted trees over FEATURE_COLUMNS (missing values are a branch of their own).

    A feature with no value in the whole training set (a plant without a DAQ has no band
    energies) is left out of the trees, as histogram binning cannot bin an empty column; the
    model still takes every feature column as input.
    """
    x = train[list(FEATURE_COLUMNS)]
    observed = [c for c in FEATURE_COLUMNS if x[c].notna().any()]
    model = make_pipeline(
        ColumnTransformer([("observed", "passthrough", observed)]),
        HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=15, class_weight="balanced",
            random_state=seed,
        ),
    )  # fmt: skip
    return model.fit(x, train["label"])


def fit_anomaly_model(train: pd.DataFrame, *, seed: int = 7):
    """Isolation Forest on healthy rows only: what it has not seen healthy is anomalous."""
    healthy = train[train["label"] == 0][list(FEATURE_COLUMNS)]
    # Features an asset class never has (a press has no vibration) are constant after imputing.
    model = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        IsolationForest(n_estimators=200, random_state=seed),
    )
    return model.fit(healthy)


def risk_scores(
    estimator, kind: str, rows: pd.DataFrame, features: Sequence[str] = FEATURE_COLUMNS
) -> np.ndarray:
    """One score per row, higher meaning worse: FAILURE is predict_proba of the positive class,
    ANOMALY is -score_samples."""
    missing = [c for c in features if c not in rows.columns]
    if missing:
        raise ValueError(f"feature rows lack {missing}")
    x = rows[list(features)].astype("float64")
    if kind == FAILURE:
        return estimator.predict_proba(x)[:, 1].astype("float64")
    return (-estimator.score_samples(x)).astype("float64")
