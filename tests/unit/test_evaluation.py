"""Alert quality: the vectorised per-failure tallies count exactly as the rule says."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantlake.models.logic.evaluation import (
    UNKNOWN_MODE,
    alert_quality,
    failure_events,
    failure_outcomes,
)

H = 3_600_000


def reference_quality(rows, failures, *, threshold, horizon_ms):
    """The rule spelled out as loops (the implementation before it was vectorised)."""
    alerts = rows[rows["score"] >= threshold]
    caught, leads, counted = 0, [], 0
    for asset, mine in rows.groupby("asset"):
        lo, hi = mine["label_time_ms"].min(), mine["label_time_ms"].max()
        fired = alerts[alerts["asset"] == asset]["label_time_ms"].to_numpy()
        for f in failures[failures["asset"] == asset]["event_time_ms"].to_numpy():
            if f - horizon_ms > hi or f <= lo:
                continue
            counted += 1
            before = fired[(fired >= f - horizon_ms) & (fired < f)]
            if len(before):
                caught += 1
                leads.append((f - before.min()) / H)
    true = [
        bool(((f > t) & (f <= t + horizon_ms)).any())
        for a, t in alerts[["asset", "label_time_ms"]].itertuples(index=False)
        for f in [failures[failures["asset"] == a]["event_time_ms"].to_numpy()]
    ]
    return counted, caught, leads, len(alerts), sum(true)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    assets=st.integers(1, 4),
    failures_per_asset=st.integers(0, 4),
    alert_share=st.floats(0.0, 0.6),
)
def test_alert_quality_matches_the_rule_spelled_out(seed, assets, failures_per_asset, alert_share):
    rng = np.random.default_rng(seed)
    rows = pd.concat(
        [
            pd.DataFrame({"asset": f"a{i}", "label_time_ms": np.arange(10, 10 + 48) * H})
            for i in range(assets)
        ],
        ignore_index=True,
    )
    rows["score"] = (rng.random(len(rows)) < alert_share).astype(float)
    # Failures also before, inside and after the scored span, some on exact label times.
    failures = pd.DataFrame(
        {
            "asset": [f"a{i}" for i in range(assets) for _ in range(failures_per_asset)],
            "event_time_ms": rng.integers(0, 70 * 2, assets * failures_per_asset) * H // 2,
        }
    )
    q = alert_quality(rows, failures, threshold=0.5, horizon_ms=6 * H)
    counted, caught, leads, alerts, true = reference_quality(
        rows, failures, threshold=0.5, horizon_ms=6 * H
    )
    assert (q.failures, q.caught, q.alerts) == (counted, caught, alerts)
    if alerts:
        assert q.precision == pytest.approx(true / alerts)
    if leads:
        assert q.mean_lead_time_h == pytest.approx(np.mean(leads))
        assert q.median_lead_time_h == pytest.approx(np.median(leads))


def test_failure_events_keep_failures_only_and_name_unknown_modes():
    events = pd.DataFrame(
        {
            "asset": ["a", "a", "b", "b"],
            "event": ["failure", "repair", "failure", "failure"],
            "failure_mode": ["bearing_wear", None, None, ""],
            "event_time_ms": [5, 6, 2, 1],
        }
    )
    out = failure_events(events)
    assert out["failure_time_ms"].tolist() == [5, 1, 2]
    assert out["failure_mode"].tolist() == ["bearing_wear", UNKNOWN_MODE, UNKNOWN_MODE]


def test_failure_outcomes_tag_the_seed_and_give_lead_time_from_the_first_alert():
    rows = pd.DataFrame({"asset": "a", "label_time_ms": np.arange(0, 48) * H, "score": 0.0})
    rows.loc[rows["label_time_ms"].isin([20 * H, 25 * H]), "score"] = 1.0
    failures = pd.DataFrame({"asset": ["a", "a"], "event_time_ms": [30 * H, 45 * H]})
    out = failure_outcomes(rows, failures, threshold=0.5, horizon_ms=12 * H, seed=3)
    assert out["caught"].tolist() == [True, False]
    assert out["lead_h"].iloc[0] == pytest.approx(10.0)
    assert np.isnan(out["lead_h"].iloc[1])
    assert set(out["seed"]) == {3}
