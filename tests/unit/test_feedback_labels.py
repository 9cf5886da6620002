"""Planners' verdicts on work orders as a label source: the rule in models.logic.training_set."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from plantlake.core.contracts import ACKNOWLEDGED, DONE, FALSE_ALARM
from plantlake.models.logic.training_set import (
    LabelPolicy,
    failure_labels,
    feedback_labels,
    label_changes,
    labelled_set,
    latest_verdicts,
)
from plantlake.pipelines.transforms.features import FEATURE_COLUMNS

H = 3_600_000
A, B = "plant1/line1/pump-02", "plant1/line1/fan-01"
HORIZON = 24 * H
OBSERVED = 99 * H  # the cutoff: label times after 75 h have an unobserved horizon


def events(rows=()):
    return pd.DataFrame(list(rows), columns=["asset", "event", "failure_mode", "event_time_ms"])


def feedback(rows):
    """(work_order_id, asset, verdict, decided_at_ms) rows as gold.work_order_feedback."""
    frame = pd.DataFrame(list(rows), columns=["work_order_id", "asset", "verdict", "decided_at_ms"])
    frame["feedback_id"] = [f"fb-{i}" for i in range(len(frame))]
    frame["failure_mode"] = "bearing_wear"
    return frame


def times(*assets):
    hours = np.arange(0, 100 * H, H)
    return pd.concat(
        [pd.DataFrame({"asset": a, "label_time_ms": hours}) for a in assets], ignore_index=True
    )


def labels(cmms, verdicts=None, *, assets=(A,)):
    """Labels by the CMMS alone, or with the verdicts applied the way `labelled_set` does."""
    healthy = None
    if verdicts is not None:
        extra = feedback_labels(verdicts, cmms, horizon_ms=HORIZON, observed_until_ms=OBSERVED)
        cmms = pd.concat([cmms, extra.events], ignore_index=True)
        healthy = extra.healthy
    return failure_labels(
        times(*assets), cmms, horizon_ms=HORIZON, observed_until_ms=OBSERVED, healthy=healthy
    )


def by_time(frame, asset=A):
    return frame[frame["asset"] == asset].set_index("label_time_ms")["label"]


def test_done_is_a_failure_the_cmms_never_saw_and_labels_the_horizon_before_it_positive():
    cmms = events()
    plain, fed = labels(cmms), labels(cmms, feedback([("wo-1", A, DONE, 50 * H)]))
    got = by_time(fed)
    assert got[26 * H : 49 * H].eq(1).all() and got[25 * H] == 0
    # Found and fixed: the asset is not down afterwards, its later labels are healthy again.
    assert got[50 * H : 75 * H].eq(0).all() and 60 * H in got.index
    assert fed.set_index("label_time_ms").loc[30 * H, "failure_mode"] == "bearing_wear"
    change = label_changes(plain, fed)
    assert (change.positives, change.negatives, change.removed) == (24, 0, 0)


def test_done_near_a_cmms_failure_is_the_same_fault_and_counts_once():
    cmms = events([(A, "failure", "bearing_wear", 60 * H), (A, "repair", "bearing_wear", 62 * H)])
    verdicts = feedback([("wo-1", A, DONE, 50 * H), ("wo-2", A, DONE, 80 * H)])
    extra = feedback_labels(verdicts, cmms, horizon_ms=HORIZON, observed_until_ms=OBSERVED)
    assert extra.done_in_cmms == 2 and extra.events.empty
    assert label_changes(labels(cmms), labels(cmms, verdicts)).changed == 0


def test_false_alarm_makes_the_unobserved_tail_before_the_verdict_known_healthy():
    cmms = events()
    plain = labels(cmms)
    fed = labels(cmms, feedback([("wo-1", A, FALSE_ALARM, 90 * H)]))
    assert by_time(plain).index.max() == 75 * H  # CMMS alone: later horizons are unknown
    got = by_time(fed)
    assert got.index.max() == 90 * H and got[76 * H : 90 * H].eq(0).all()
    assert 91 * H not in got.index  # after the verdict the horizon is unknown again
    change = label_changes(plain, fed)
    assert (change.positives, change.negatives, change.removed) == (0, 15, 0)


def test_an_observed_cmms_failure_wins_over_a_false_alarm():
    cmms = events([(A, "failure", "bearing_wear", 92 * H), (A, "repair", "bearing_wear", 93 * H)])
    plain = labels(cmms)
    fed = labels(cmms, feedback([("wo-1", A, FALSE_ALARM, 90 * H)]))
    # Every time in the false alarm's span has the failure at 92 h within its horizon.
    assert label_changes(plain, fed).changed == 0
    assert by_time(fed)[68 * H : 75 * H].eq(1).all()


def test_acknowledged_changes_nothing_and_verdicts_touch_only_their_own_asset():
    cmms = events([(B, "failure", "imbalance", 40 * H), (B, "repair", "imbalance", 41 * H)])
    verdicts = feedback([("wo-1", A, ACKNOWLEDGED, 50 * H), ("wo-2", B, DONE, 80 * H)])
    plain = labels(cmms, assets=(A, B))
    fed = labels(cmms, verdicts, assets=(A, B))
    assert by_time(fed, A).equals(by_time(plain, A))
    # B's done order only: 56 h to 75 h (later horizons stay unobserved, positive or not).
    assert label_changes(plain, fed).positives == 20


def test_the_latest_verdict_of_each_order_counts_and_later_ones_are_unknown_at_the_cutoff():
    verdicts = feedback([
        ("wo-1", A, ACKNOWLEDGED, 40 * H),
        ("wo-1", A, DONE, 50 * H),  # the planner came back and closed it
        ("wo-2", A, DONE, 60 * H),
        ("wo-2", A, FALSE_ALARM, 61 * H),  # ... or changed their mind
        ("wo-3", A, DONE, 120 * H),  # decided after the cutoff
    ])  # fmt: skip
    latest = latest_verdicts(verdicts, until_ms=OBSERVED).set_index("work_order_id")["verdict"]
    assert latest.to_dict() == {"wo-1": DONE, "wo-2": FALSE_ALARM}
    extra = feedback_labels(verdicts, events(), horizon_ms=HORIZON, observed_until_ms=OBSERVED)
    assert extra.verdicts == {DONE: 1, FALSE_ALARM: 1}
    assert extra.events["event_time_ms"].tolist() == [50 * H, 50 * H]  # wo-1 only


def test_the_training_set_with_feedback_keeps_features_point_in_time():
    feats = pd.DataFrame({"asset": A, "asset_class": "pump", "feature_time_ms": np.arange(100) * H})
    feats["knowable_at_ms"] = feats["feature_time_ms"]
    for i, name in enumerate(FEATURE_COLUMNS):
        feats[name] = feats["feature_time_ms"] / H + i
    policy = LabelPolicy(horizon_ms=HORIZON, every_ms=H, max_staleness_ms=H)
    verdicts = feedback([("wo-1", A, DONE, 50 * H), ("wo-2", A, FALSE_ALARM, 95 * H)])
    rows = labelled_set(feats, events(), policy=policy, observed_until_ms=OBSERVED,
                        feedback=verdicts)  # fmt: skip
    assert (rows["feature_time_ms"] <= rows["label_time_ms"]).all()
    assert rows["label"].sum() == 24 and rows["label_time_ms"].max() == 95 * H
    without = labelled_set(feats, events(), policy=policy, observed_until_ms=OBSERVED)
    assert label_changes(without, rows).negatives == 95 - 75


@settings(max_examples=80, deadline=None)
@given(
    failures=st.lists(st.integers(0, 99), max_size=3, unique=True),
    verdicts=st.lists(
        st.tuples(st.sampled_from([ACKNOWLEDGED, FALSE_ALARM, DONE]), st.integers(0, 130)),
        max_size=5,
    ),
)
def test_feedback_never_overrides_an_observed_failure(failures, verdicts):
    cmms = events(
        [(A, "failure", "bearing_wear", f * H) for f in failures]
        + [(A, "repair", "bearing_wear", f * H + H // 2) for f in failures]
    )
    fb = feedback([(f"wo-{i}", A, v, at * H) for i, (v, at) in enumerate(verdicts)])
    plain, fed = by_time(labels(cmms)), by_time(labels(cmms, fb))
    # A CMMS positive stays positive, and no row is lost.
    assert set(plain.index) <= set(fed.index)
    assert fed[plain[plain == 1].index].eq(1).all()
    # A row the CMMS alone leaves unknown is known only as a false alarm's confirmed negative,
    # or as a positive before a done order.
    for t in set(fed.index) - set(plain.index):
        spans = [
            at * H for v, at in verdicts if v == FALSE_ALARM and at * H - HORIZON <= t <= at * H
        ]
        assert fed[t] == 1 or spans, t
    if not any(v == DONE for v, _ in verdicts):
        assert fed[fed == 1].index.isin(plain.index).all()


def test_training_reports_how_many_labels_feedback_changed():
    from rich.console import Console

    from plantlake.models.jobs.train import TrainingInputs, feedback_effect

    feats = pd.DataFrame({"asset": A, "asset_class": "pump", "feature_time_ms": np.arange(100) * H})
    feats["knowable_at_ms"] = feats["feature_time_ms"]
    for name in FEATURE_COLUMNS:
        feats[name] = 1.0
    policy = LabelPolicy(horizon_ms=HORIZON, every_ms=H, max_staleness_ms=H)
    console = Console(record=True, width=400)
    plain = TrainingInputs(feats, events(), versions={})
    assert feedback_effect(plain, policy=policy, cutoff_ms=OBSERVED, console=console) is None
    verdicts = feedback([("wo-1", A, DONE, 50 * H), ("wo-2", A, FALSE_ALARM, 80 * H),
                         ("wo-3", A, ACKNOWLEDGED, 20 * H)])  # fmt: skip
    fed = TrainingInputs(feats, events(), versions={}, feedback=verdicts)
    changes = feedback_effect(fed, policy=policy, cutoff_ms=OBSERVED, console=console)
    assert changes is not None and (changes.positives, changes.negatives) == (24, 5)
    said = console.export_text()
    assert "3 work orders judged" in said and "changed 29 labels" in said
