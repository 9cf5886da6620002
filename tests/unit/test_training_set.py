"""Training sets: labels, point-in-time joins that cannot leak, time splits; alert quality."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantlake.core.errors import ConfigError
from plantlake.models.logic.evaluation import (
    alert_quality,
    baseline_limits,
    baseline_scores,
    budget_threshold,
)
from plantlake.models.logic.training_set import (
    INGEST,
    TRAIN,
    VALIDATION,
    LabelPolicy,
    build_training_set,
    failure_labels,
    point_in_time_join,
    time_split,
)
from plantlake.pipelines.transforms.features import FEATURE_COLUMNS

H = 3_600_000
A = "plant1/line1/pump-02"


def features(times, knowable=None, asset=A, value=None):
    frame = pd.DataFrame({"asset": asset, "asset_class": "pump", "feature_time_ms": times})
    frame["knowable_at_ms"] = frame["feature_time_ms"] if knowable is None else knowable
    for i, name in enumerate(FEATURE_COLUMNS):
        frame[name] = (frame["feature_time_ms"] / H + i) if value is None else value
    return frame


def events(rows):
    return pd.DataFrame(rows, columns=["asset", "event", "failure_mode", "event_time_ms"])


def test_labels_look_ahead_one_horizon_and_skip_downtime_and_the_unobserved_tail():
    times = pd.DataFrame({"asset": A, "label_time_ms": np.arange(0, 100 * H, H)})
    log = events([(A, "failure", "bearing_wear", 50 * H), (A, "repair", "bearing_wear", 54 * H)])
    out = failure_labels(times, log, horizon_ms=24 * H, observed_until_ms=99 * H).set_index(
        "label_time_ms"
    )
    assert out.loc[26 * H, "label"] == 1 and out.loc[25 * H, "label"] == 0
    assert out.loc[49 * H, "label"] == 1 and out.loc[49 * H, "failure_mode"] == "bearing_wear"
    assert out.loc[49 * H, "time_to_failure_h"] == pytest.approx(1.0)
    assert not {50 * H, 51 * H, 53 * H} & set(out.index)  # down from failure to repair
    assert 54 * H in out.index and out.loc[54 * H, "label"] == 0
    assert out.index.max() == 75 * H  # later labels' horizons are not observed yet


def test_an_unrepaired_failure_keeps_the_asset_down():
    times = pd.DataFrame({"asset": A, "label_time_ms": np.arange(0, 20 * H, H)})
    log = events([(A, "failure", "bearing_wear", 10 * H)])
    out = failure_labels(times, log, horizon_ms=2 * H, observed_until_ms=30 * H)
    assert out["label_time_ms"].max() == 9 * H


def test_point_in_time_join_takes_the_latest_row_at_or_before_within_staleness():
    feats = features([0, 5 * 60_000, 10 * 60_000, 60 * 60_000])
    labels = pd.DataFrame({"asset": A, "label_time_ms": [10 * 60_000, 12 * 60_000, 50 * 60_000]})
    policy = LabelPolicy(horizon_ms=H, every_ms=H, max_staleness_ms=30 * 60_000)
    out = point_in_time_join(labels.assign(label=0), feats, policy=policy)
    assert out["feature_time_ms"].tolist() == [10 * 60_000, 10 * 60_000]  # 50 min: too stale
    assert out["staleness_ms"].tolist() == [0, 2 * 60_000]


def test_as_of_ingest_refuses_rows_that_had_not_arrived():
    feats = features([0, 5 * 60_000], knowable=[1000, 20 * 60_000])  # the second arrived late
    labels = pd.DataFrame({"asset": A, "label_time_ms": [6 * 60_000], "label": 0})
    event = point_in_time_join(labels, feats, policy=LabelPolicy(H, H, 30 * 60_000))
    ingest = point_in_time_join(labels, feats, policy=LabelPolicy(H, H, 30 * 60_000, as_of=INGEST))
    assert event["feature_time_ms"].tolist() == [5 * 60_000]
    assert ingest["feature_time_ms"].tolist() == [0]


def test_bad_as_of_is_a_config_error():
    with pytest.raises(ConfigError):
        LabelPolicy(H, H, H, as_of="wall")


def test_time_split_leaves_a_gap_and_puts_the_latest_times_in_validation():
    rows = pd.DataFrame({"asset": A, "label_time_ms": np.arange(0, 100 * H, H)})
    out = time_split(rows, validation_fraction=0.3, gap_ms=24 * H)
    train, val = out[out["split"] == TRAIN], out[out["split"] == VALIDATION]
    assert val["label_time_ms"].min() - train["label_time_ms"].max() > 24 * H
    assert val["label_time_ms"].max() == 99 * H


@settings(max_examples=60, deadline=None)
@given(
    feature_times=st.lists(st.integers(0, 2000), min_size=1, max_size=60, unique=True),
    delays=st.lists(st.integers(0, 300), min_size=60, max_size=60),
    failures=st.lists(st.integers(0, 2400), max_size=4, unique=True),
    as_of=st.sampled_from(["event", "ingest"]),
)
def test_no_feature_row_from_after_its_label_time_enters_a_training_set(
    feature_times, delays, failures, as_of
):
    minute = 60_000
    times = np.array(sorted(feature_times), dtype=np.int64) * minute
    knowable = times + np.array(delays[: len(times)], dtype=np.int64) * minute
    log = events([(A, "failure", "bearing_wear", f * minute) for f in failures]
                 + [(A, "repair", "bearing_wear", f * minute + 30 * minute) for f in failures])  # fmt: skip
    policy = LabelPolicy(horizon_ms=2 * H, every_ms=15 * minute, max_staleness_ms=H, as_of=as_of)
    out = build_training_set(
        features(times, knowable=knowable), log, policy=policy, observed_until_ms=2400 * minute,
        validation_fraction=0.3, gap_ms=2 * H,
    )  # fmt: skip
    assert (out["feature_time_ms"] <= out["label_time_ms"]).all()
    assert (out["staleness_ms"] <= H).all()
    if as_of == "ingest":
        assert (out["knowable_at_ms"] <= out["label_time_ms"]).all()
    # The features are the row's own (a function of feature time), not another row's.
    assert np.allclose(out[FEATURE_COLUMNS[0]], out["feature_time_ms"] / H)
    train = out[out["split"] == TRAIN]
    if len(train) and (out["split"] == VALIDATION).any():
        assert (
            train["label_time_ms"].max() + policy.horizon_ms
            < out[out["split"] == VALIDATION]["label_time_ms"].min()
        )


def test_alert_quality_counts_recall_lead_time_precision_and_false_alarms():
    rows = pd.DataFrame({"asset": A, "label_time_ms": np.arange(0, 48 * H, H)})
    rows["score"] = 0.0
    rows.loc[rows["label_time_ms"].isin([20 * H, 22 * H, 40 * H]), "score"] = 1.0
    failures = pd.DataFrame({"asset": [A], "event_time_ms": [30 * H]})
    q = alert_quality(rows, failures, threshold=0.5, horizon_ms=12 * H)
    assert (q.failures, q.caught, q.recall, q.alerts) == (1, 1, 1.0, 3)
    assert q.mean_lead_time_h == pytest.approx(10.0)
    assert q.precision == pytest.approx(2 / 3)
    assert q.false_alarms_per_asset_day == pytest.approx(1 / (47 / 24))


def test_budget_threshold_flags_that_share_of_rows():
    scores = np.arange(100, dtype=float)
    assert (scores >= budget_threshold(scores, 0.05)).sum() == 5


def test_static_baseline_limits_come_from_healthy_rows_per_class():
    train = features(np.arange(0, 100) * H, value=1.0).assign(label=0)
    train.loc[train.index[-1], ["vibration_rms_mean_1h", "label"]] = [50.0, 1]
    limits = baseline_limits(train)
    assert limits["pump"]["vibration_rms_mean_1h"] == pytest.approx(1.0)
    assert baseline_scores(train.tail(1), limits)[0] == pytest.approx(50.0)
