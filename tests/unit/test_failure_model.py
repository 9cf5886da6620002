"""The failure model trains and scores when a feature has no value at all (a plant without a
DAQ has no band energies): histogram binning cannot bin an empty column."""

import numpy as np
import pandas as pd

from plantlake.core.contracts import FEATURE_COLUMNS
from plantlake.models.logic.estimators import fit_failure_model


def test_a_feature_with_no_value_is_left_out_and_still_accepted_as_input():
    rng = np.random.default_rng(7)
    rows = pd.DataFrame(rng.normal(size=(200, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    rows["vibration_band_0_50_mean_1h"] = np.nan  # never measured in training
    rows["label"] = (rows["vibration_rms_mean_1h"] > 0.5).astype(int)
    model = fit_failure_model(rows)
    # At scoring time the column may hold values (a DAQ added later): it is simply not used.
    scored = rows[list(FEATURE_COLUMNS)].assign(vibration_band_0_50_mean_1h=1.0)
    probabilities = model.predict_proba(scored)[:, 1]
    assert np.isfinite(probabilities).all()
    high, low = probabilities[rows["label"] == 1].mean(), probabilities[rows["label"] == 0].mean()
    assert high > low
