"""Budget evaluation: equal budgets, bootstrap intervals, baselines and the promotion rule."""

import numpy as np
import pandas as pd
import pytest

from plantlake.models.logic.baselines import iso10816_scores, rolling_zscores
from plantlake.models.logic.budget_evaluation import (
    BUDGETS,
    MethodResult,
    ModeResult,
    bootstrap_ci,
    budget_curve,
    budget_sweep,
    mode_table,
    outcomes_at_budget,
    promotion_verdict,
    summaries,
    summarize,
)
from plantlake.models.logic.evaluation import baseline_limits, baseline_scores

H = 3_600_000
MODES = ("bearing_wear", "imbalance", "cavitation", "seal_leak")


def holdout(*, assets=200, hours=200, failures_per_asset=4, horizon_ms=H, seed=0):
    """Hourly label rows of many assets and their failures, half an hour past a label time.

    With failures at m*H + H/2, the horizon window [f - horizon, f) holds exactly horizon/H
    label times: k = 1 for a one-hour horizon. Failures of an asset are 40 h apart, so their
    windows never overlap. `label` marks the rows inside a window (what an oracle knows).
    """
    rng = np.random.default_rng(seed)
    names = [f"site/line/asset-{i:03d}" for i in range(assets)]
    rows = pd.DataFrame(
        {
            "asset": np.repeat(names, hours),
            "asset_class": "pump",
            "label_time_ms": np.tile(np.arange(hours, dtype=np.int64) * H, assets),
        }
    )
    first = 10 + rng.integers(0, 40, assets)
    f_hours = (first[:, None] + 40 * np.arange(failures_per_asset)[None, :]).ravel()
    failures = pd.DataFrame(
        {
            "asset": np.repeat(names, failures_per_asset),
            "event": "failure",
            "failure_mode": rng.choice(MODES, assets * failures_per_asset),
            "event_time_ms": f_hours * H + H // 2,
        }
    )
    # label = 1 where a failure follows within (t, t + horizon].
    key = rows["asset"] + ":" + (rows["label_time_ms"] // H).astype(str)
    inside = {
        f"{a}:{(t - back) // H}"
        for a, t in failures[["asset", "event_time_ms"]].itertuples(index=False)
        for back in range(H // 2, horizon_ms + 1, H)
    }
    rows["label"] = key.isin(inside).astype(int)
    rows["vibration_rms_mean_1h"] = rng.normal(2.0, 0.2, len(rows)) + rows["label"]
    rows["temperature_mean_1h"] = rng.normal(60.0, 2.0, len(rows))
    rows["pressure_mean_1h"] = rng.normal(5.0, 0.3, len(rows))
    return rows, failures


def oracle(rows, seed=0):
    # Positive rows above every negative; the noise breaks ties so the budget is exact.
    return 2.0 * rows["label"].to_numpy() + np.random.default_rng(seed).random(len(rows))


def test_an_oracle_catches_every_failure_at_the_budget():
    rows, failures = holdout(failures_per_asset=1, horizon_ms=3 * H)
    assert rows["label"].mean() < 0.02  # fewer positives than the budget share
    result = summarize(
        outcomes_at_budget(
            rows, failures, method="oracle", scores=oracle(rows), budget=0.02, horizon_ms=3 * H
        )
    )
    assert (result.failures, result.caught, result.recall) == (200, 200, 1.0)
    assert result.recall_ci == (1.0, 1.0)
    # The first alert is the first positive row, 2.5 h before the failure.
    assert result.median_lead_time_h == pytest.approx(2.5)


@pytest.mark.parametrize("horizon_h", [1, 3])
def test_a_shuffled_score_catches_about_what_chance_allows(horizon_h):
    # A random alerter flags each row with probability b (the budget). A failure with k label
    # rows in its horizon window is caught with probability 1 - (1 - b)^k: b when k = 1. Here
    # k = horizon_h. Over 800 failures and 5 shuffles the mean recall's standard deviation is
    # about 0.0035 (k = 1) and 0.0055 (k = 3); the tolerance is four of them.
    budget, horizon = 0.05, horizon_h * H
    rows, failures = holdout(horizon_ms=horizon)
    expected = 1 - (1 - budget) ** horizon_h
    recalls = []
    for seed in range(5):
        shuffled = np.random.default_rng(seed).permutation(oracle(rows))
        o = outcomes_at_budget(
            rows, failures, method="shuffled", scores=shuffled, budget=budget, horizon_ms=horizon
        )
        recalls.append(o.failures["caught"].mean())
    assert len(o.failures) == 800
    sd = np.sqrt(expected * (1 - expected) / (800 * len(recalls)))
    assert np.mean(recalls) == pytest.approx(expected, abs=4 * sd)


def test_every_method_alerts_on_the_same_share_of_rows_at_each_budget():
    rows, failures = holdout(assets=60, hours=300)
    train, test = rows[rows["label_time_ms"] < 150 * H], rows[rows["label_time_ms"] >= 150 * H]
    static = baseline_scores(test, baseline_limits(train))
    scores = {
        "static_threshold": static,
        "rolling_zscore": rolling_zscores(test, history=train, min_periods=12),
        "iso_10816": iso10816_scores(test),
        "model": oracle(test),
    }
    out = budget_sweep(test, failures, scores=scores, horizon_ms=H)
    for budget in BUDGETS:
        at = {o.method: o for o in out if o.budget == budget}
        assert set(at) == set(scores)
        for o in at.values():
            assert abs(o.alerts - budget * len(test)) <= 1
        # The static baseline is thresholded at the budget, not at its fixed limits (1.0).
        assert at["static_threshold"].thresholds[0] != 1.0


def test_promotion_needs_a_lower_bound_at_least_the_champions_and_breaks_ties_on_lead_time():
    def result(lo, lead, method="model"):
        return MethodResult(
            method=method, budget=0.05, threshold=0.5, failures=50, caught=30, recall=0.6,
            recall_ci=(lo, lo + 0.2), median_lead_time_h=lead,
            median_lead_time_ci=(lead - 5, lead + 5), false_alarms_per_asset_day=0.1,
            precision=0.2, alerts=100,
        )  # fmt: skip

    champion = result(0.45, 24.0, "champion")
    refused = promotion_verdict(result(0.40, 48.0), champion)
    assert not refused.promoted
    assert "0.400" in refused.reason and "0.450" in refused.reason
    assert "48.0 h" in refused.reason and "24.0 h" in refused.reason
    assert promotion_verdict(result(0.50, 12.0), champion).promoted
    assert promotion_verdict(result(0.45, 30.0), champion).promoted
    assert not promotion_verdict(result(0.45 + 1e-12, 20.0), champion).promoted
    assert promotion_verdict(result(0.45, 24.0), champion).promoted  # equal lead promotes
    assert promotion_verdict(result(0.0, float("nan")), None).promoted
    with pytest.raises(ValueError, match="same alert budget"):
        promotion_verdict(result(0.5, 1.0), MethodResult(**{**vars(champion), "budget": 0.1}))


def test_bootstrap_interval_holds_the_estimate_narrows_with_failures_and_is_seeded():
    def outcomes(n):
        caught = np.arange(n) % 2 == 0
        return pd.DataFrame({"caught": caught, "lead_h": np.where(caught, np.arange(n), np.nan)})

    few, many = outcomes(40), outcomes(400)
    (lo, hi), (lead_lo, lead_hi) = bootstrap_ci(few, random_state=1)
    assert lo <= 0.5 <= hi
    assert lead_lo <= np.nanmedian(few["lead_h"]) <= lead_hi
    (mlo, mhi), _ = bootstrap_ci(many, random_state=1)
    assert mlo <= 0.5 <= mhi and mhi - mlo < (hi - lo) / 2
    assert bootstrap_ci(few, random_state=1) == bootstrap_ci(few, random_state=1)


def test_rolling_zscore_sees_only_the_past():
    rows, _ = holdout(assets=3, hours=300)
    before = rolling_zscores(rows, min_periods=12)
    later = rows["label_time_ms"] >= 200 * H
    changed = rows.copy()
    changed.loc[later, "vibration_rms_mean_1h"] = 1e6
    after = rolling_zscores(changed, min_periods=12)
    np.testing.assert_array_equal(before[~later.to_numpy()], after[~later.to_numpy()])
    assert after[later.to_numpy()].max() > 1e3  # the change itself does show


def test_rolling_zscore_of_a_holdout_uses_the_training_history():
    rows, _ = holdout(assets=2, hours=300)
    train, test = rows[rows["label_time_ms"] < 150 * H], rows[rows["label_time_ms"] >= 150 * H]
    alone = rolling_zscores(test, min_periods=12)
    with_history = rolling_zscores(test, history=rows, min_periods=12)
    first = (test["label_time_ms"] == 150 * H).to_numpy()
    assert (alone[first] == 0).all() and (with_history[first] > 0).all()
    in_test = (rows["label_time_ms"] >= 150 * H).to_numpy()
    np.testing.assert_allclose(with_history, rolling_zscores(rows, min_periods=12)[in_test])
    assert len(rolling_zscores(test, history=train)) == len(test)


def test_per_mode_breakdown_adds_up_to_the_total():
    rows, failures = holdout()
    result = summarize(
        outcomes_at_budget(
            rows, failures, method="m", scores=np.random.default_rng(5).random(len(rows)),
            budget=0.05, horizon_ms=H,
        )
    )  # fmt: skip
    assert set(result.by_mode) == set(MODES)
    assert sum(m.failures for m in result.by_mode.values()) == result.failures
    assert sum(m.caught for m in result.by_mode.values()) == result.caught
    assert isinstance(next(iter(result.by_mode.values())), ModeResult)
    assert mode_table([result])["failures"].sum() == result.failures


def test_seeds_pool_by_concatenating_their_failures():
    per_seed = []
    for seed in (1, 2, 3):
        rows, failures = holdout(assets=20, seed=seed)
        per_seed += budget_sweep(
            rows, failures, scores={"oracle": oracle(rows, seed)}, horizon_ms=H,
            budgets=(0.02, 0.05), seed=seed,
        )  # fmt: skip
    results = summaries(per_seed, resamples=200)
    assert [(r.method, r.budget) for r in results] == [("oracle", 0.02), ("oracle", 0.05)]
    pooled = results[1]
    assert pooled.failures == 3 * 80 and pooled.seeds == (1, 2, 3)
    assert pooled.alerts == sum(o.alerts for o in per_seed if o.budget == 0.05)
    curve = budget_curve(results)
    assert list(curve["budget"]) == [0.02, 0.05]
    assert {"recall_lo", "recall_hi", "lead_time_lo", "lead_time_hi"} <= set(curve.columns)


def test_budget_curves_plot_to_a_png(tmp_path):
    from plantlake.models.jobs.evaluation_plot import plot_budget_curves

    rows, failures = holdout(assets=20)
    scores = {"oracle": oracle(rows), "vibration": iso10816_scores(rows)}
    curve = budget_curve(summaries(budget_sweep(rows, failures, scores=scores, horizon_ms=H)))
    path = plot_budget_curves(curve, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paired_lead_times_compare_the_failures_both_caught():
    from plantlake.models.logic.budget_evaluation import Outcomes, paired_lead_times

    def outcomes(caught, leads):
        failures = pd.DataFrame({
            "asset": ["a", "b", "c"], "failure_time_ms": [1, 2, 3], "failure_mode": "m",
            "caught": caught, "lead_h": leads, "seed": 7,
        })  # fmt: skip
        return Outcomes("x", 0.05, (0.5,), failures, 3, 3, 1.0, (7,))

    # Ours caught a quick failure too (1 h): its median is shorter, yet it warns earlier on
    # both failures the two caught.
    ours = outcomes([True, True, True], [20.0, 18.0, 1.0])
    theirs = outcomes([True, True, False], [15.0, 12.0, float("nan")])
    assert paired_lead_times(ours, theirs) == (2, 19.0, 13.5)
