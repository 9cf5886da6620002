"""Every method judged on a holdout, scored side by side (models, pure).

The two models trained on the training split, and the baselines plants run: static limits per
asset class (their largest signal-to-limit ratio as the score), the per-asset rolling z-score
and the ISO 10816 vibration zones. Each gives one score per holdout row; the budget evaluation
thresholds every one of them at the same alert budget.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from plantlake.models.logic.baselines import iso10816_scores, rolling_zscores
from plantlake.models.logic.estimators import (
    ANOMALY,
    FAILURE,
    fit_anomaly_model,
    fit_failure_model,
    risk_scores,
)
from plantlake.models.logic.evaluation import baseline_limits, baseline_scores

FAILURE_PREDICTOR = "failure predictor"
ANOMALY_DETECTOR = "anomaly detector"
STATIC_LIMITS = "static limits"
ROLLING_ZSCORE = "rolling z-score"
ISO_10816 = "ISO 10816 zones"
BASELINES = (STATIC_LIMITS, ROLLING_ZSCORE, ISO_10816)


def baseline_method_scores(train: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, np.ndarray]:
    """The baselines' scores of the holdout rows: limits set on the training split's healthy
    rows, and z-scores whose trailing history reaches back into the training split."""
    return {
        STATIC_LIMITS: baseline_scores(holdout, baseline_limits(train)),
        ROLLING_ZSCORE: rolling_zscores(holdout, history=train),
        ISO_10816: iso10816_scores(holdout),
    }


def method_scores(
    train: pd.DataFrame, holdout: pd.DataFrame, *, seed: int = 7
) -> dict[str, np.ndarray]:
    """Fit both models on `train` and score `holdout` with them and every baseline."""
    return {
        FAILURE_PREDICTOR: risk_scores(fit_failure_model(train, seed=seed), FAILURE, holdout),
        ANOMALY_DETECTOR: risk_scores(fit_anomaly_model(train, seed=seed), ANOMALY, holdout),
        **baseline_method_scores(train, holdout),
    }
