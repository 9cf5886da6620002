"""Work orders from model alerts: which to open, update and close (models layer, pure logic).

The rules of gold.work_orders, in plain Python so they are tested without Spark:

- an alert of a failure model means `failure`: the model predicts a failure within its horizon,
  not which mode (a pump may wear a bearing, cavitate or leak at the seal), so its evidence lists
  the signature features of every mode the asset's class has, for the planner to read; an
  anomaly model's alert means `anomaly`;
- at most one order is open per (asset, failure mode): a further alert updates the open order's
  latest evidence and never opens a second;
- an open order closes when silver.maintenance_events records a repair or inspection of the asset
  after the feature time that opened it;
- `work_order_id` is a hash of (asset, failure mode, opening feature time), so a retried batch
  finds the order it opened before instead of opening another.

Alerts and maintenance events are walked in event time, so a backlog of feature rows scored at
once gives the orders an always-on scorer would have opened and closed. Times are epoch ms.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from plantlake.core.clock import iso_ms
from plantlake.pipelines.transforms.features import FEATURE_COLUMNS, MAINTENANCE_KINDS

OPEN, CLOSED = "open", "closed"
ANOMALY_MODE = "anomaly"
# The failure modes each asset class has (as the plant's CMMS export names them), and the
# features that show each one: what a planner reads first to tell which it is.
CLASS_MODES: Mapping[str, tuple[str, ...]] = {
    "pump": ("bearing_wear", "imbalance", "cavitation", "seal_leak", "winding"),
    "motor": ("bearing_wear", "imbalance", "winding"),
    "press": ("seal_leak", "winding"),
}
SIGNATURE_FEATURES: Mapping[str, tuple[str, ...]] = {
    "bearing_wear": ("vibration_band_50_200_mean_1h", "vibration_band_50_200_trend_24h",
                     "vibration_rms_mean_1h", "vibration_rms_max_1h", "temperature_mean_1h",
                     "temperature_trend_24h"),
    "imbalance": ("vibration_band_0_50_mean_1h", "vibration_rms_mean_1h", "vibration_rms_per_amp_1h",
                  "vibration_rms_trend_6h"),
    "cavitation": ("vibration_band_500_1000_mean_1h", "vibration_band_500_1000_trend_24h",
                   "pressure_mean_1h", "pressure_per_flow_1h", "current_std_1h"),
    "seal_leak": ("pressure_mean_1h", "pressure_trend_6h", "pressure_trend_24h",
                  "pressure_per_flow_1h", "cycles_since_maintenance"),
    "winding": ("current_mean_1h", "current_std_1h", "temperature_rise_per_amp_1h",
                "temperature_trend_24h"),
}  # fmt: skip
# What a failure model's alert stands for: a failure within the horizon, of any mode.
FAILURE_MODE = "failure"

TREND_FEATURES: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if c.endswith("_24h"))
ANOMALY_FEATURES: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if c not in TREND_FEATURES)


# gold.work_orders as the pure logic sees it (times in epoch ms); the Spark adapter adds
# timestamp columns for people.
WORK_ORDER_SCHEMA = ", ".join(
    [
        "work_order_id string", "asset string", "asset_class string", "failure_mode string",
        "status string", "opened_feature_time_ms long", "opened_score double",
        "latest_feature_time_ms long", "latest_score double", "alert_count long",
        "model_name string", "model_version string", "model_kind string", "threshold double",
        "horizon_hours double", "evidence string", "closed_event string",
        "closed_event_time_ms long", "closed_reason string", "created_at_ms long",
        "updated_at_ms long", "alerted_at_ms long",
    ]
)  # fmt: skip


@dataclass(frozen=True)
class Alert:
    """One prediction at or above its model's threshold, with the feature row it scored."""

    asset: str
    asset_class: str | None
    model_name: str
    model_version: str
    model_kind: str  # failure or anomaly
    feature_time_ms: int
    score: float
    threshold: float
    horizon_hours: float | None
    features: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def failure_mode(self) -> str:
        return failure_mode(self.asset_class, self.model_kind)


@dataclass(frozen=True)
class RepairOrInspection:
    """A silver.maintenance_events row: failure, repair or inspection of an asset."""

    asset: str
    event: str
    event_time_ms: int


@dataclass(frozen=True)
class WorkOrder:
    """One row of gold.work_orders (WORK_ORDER_SCHEMA)."""

    work_order_id: str
    asset: str
    asset_class: str | None
    failure_mode: str
    status: str
    opened_feature_time_ms: int
    opened_score: float
    latest_feature_time_ms: int
    latest_score: float
    alert_count: int
    model_name: str
    model_version: str
    model_kind: str
    threshold: float
    horizon_hours: float | None
    evidence: str
    closed_event: str | None = None
    closed_event_time_ms: int | None = None
    closed_reason: str | None = None
    created_at_ms: int = 0
    updated_at_ms: int = 0
    alerted_at_ms: int | None = None

    def covers(self, feature_time_ms: int) -> bool:
        """Whether a feature time falls in this order's life (from opening to its close)."""
        end = self.closed_event_time_ms if self.status == CLOSED else None
        return self.opened_feature_time_ms <= feature_time_ms and (
            end is None or feature_time_ms <= end
        )

    def as_row(self) -> dict:
        return {name: getattr(self, name) for name in WORK_ORDER_COLUMNS}

    @classmethod
    def from_row(cls, row: Mapping) -> WorkOrder:
        return cls(**{name: row[name] for name in WORK_ORDER_COLUMNS})


WORK_ORDER_COLUMNS: tuple[str, ...] = tuple(c.split()[0] for c in WORK_ORDER_SCHEMA.split(", "))


@dataclass(frozen=True)
class Plan:
    """What to write: every order that changed, and which of them were opened, updated, closed."""

    orders: tuple[WorkOrder, ...]
    opened: frozenset[str]
    updated: frozenset[str]
    closed: frozenset[str]
    # Open orders whose alarm has not been acknowledged yet (new ones, and any an earlier,
    # interrupted run wrote but could not announce).
    to_announce: tuple[WorkOrder, ...]


def failure_mode(asset_class: str | None, model_kind: str) -> str:
    """What an alert stands for: `anomaly` for anomaly models, else `failure` (of any mode)."""
    return ANOMALY_MODE if model_kind == "anomaly" else FAILURE_MODE


def signatures(asset_class: str | None) -> dict[str, tuple[str, ...]]:
    """The signature features of each failure mode of the class (every mode, for an unknown
    class)."""
    modes = CLASS_MODES.get(asset_class or "", tuple(SIGNATURE_FEATURES))
    return {mode: SIGNATURE_FEATURES[mode] for mode in modes}


def work_order_id(asset: str, mode: str, opened_feature_time_ms: int) -> str:
    """Deterministic id: the same opening alert always names the same order."""
    digest = hashlib.sha256(f"{asset}\x1f{mode}\x1f{int(opened_feature_time_ms)}".encode())
    return "wo-" + digest.hexdigest()[:24]


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def evidence(alert: Alert) -> str:
    """The evidence JSON of an alert: the model, its score and threshold, the horizon and the
    feature time; the 24 h trends; for a failure model the signature features of each failure
    mode of the asset's class (`signatures`, and all of them in `features`), for an anomaly model
    every other feature."""
    mode = alert.failure_mode
    by_mode = {} if mode == ANOMALY_MODE else signatures(alert.asset_class)
    keys = ANOMALY_FEATURES if mode == ANOMALY_MODE else tuple(
        dict.fromkeys(k for features in by_mode.values() for k in features))  # fmt: skip
    body = {
        "model_name": alert.model_name,
        "model_version": alert.model_version,
        "model_kind": alert.model_kind,
        "failure_mode": mode,
        "score": _number(alert.score),
        "threshold": _number(alert.threshold),
        "horizon_hours": _number(alert.horizon_hours),
        "feature_time": iso_ms(alert.feature_time_ms),
        "feature_time_ms": int(alert.feature_time_ms),
        "features": {k: _number(alert.features.get(k)) for k in keys},
        "trends_24h": {k: _number(alert.features.get(k)) for k in TREND_FEATURES},
        "signatures": {m: {k: _number(alert.features.get(k)) for k in features}
                       for m, features in by_mode.items()},
    }  # fmt: skip
    return json.dumps(body, sort_keys=True)


def _open(alert: Alert, now_ms: int) -> WorkOrder:
    mode = alert.failure_mode
    return WorkOrder(
        work_order_id=work_order_id(alert.asset, mode, alert.feature_time_ms),
        asset=alert.asset,
        asset_class=alert.asset_class,
        failure_mode=mode,
        status=OPEN,
        opened_feature_time_ms=int(alert.feature_time_ms),
        opened_score=float(alert.score),
        latest_feature_time_ms=int(alert.feature_time_ms),
        latest_score=float(alert.score),
        alert_count=1,
        model_name=alert.model_name,
        model_version=alert.model_version,
        model_kind=alert.model_kind,
        threshold=float(alert.threshold),
        horizon_hours=alert.horizon_hours,
        evidence=evidence(alert),
        created_at_ms=now_ms,
        updated_at_ms=now_ms,
    )


def _with_evidence(order: WorkOrder, alert: Alert, now_ms: int) -> WorkOrder:
    return replace(
        order,
        latest_feature_time_ms=int(alert.feature_time_ms),
        latest_score=float(alert.score),
        alert_count=order.alert_count + 1,
        model_name=alert.model_name,
        model_version=alert.model_version,
        model_kind=alert.model_kind,
        threshold=float(alert.threshold),
        horizon_hours=alert.horizon_hours,
        evidence=evidence(alert),
        updated_at_ms=now_ms,
    )


def _close(order: WorkOrder, event: RepairOrInspection, now_ms: int) -> WorkOrder:
    return replace(
        order,
        status=CLOSED,
        closed_event=event.event,
        closed_event_time_ms=event.event_time_ms,
        closed_reason=f"{event.event} of {event.asset} at {iso_ms(event.event_time_ms)} "
        "(silver.maintenance_events)",
        updated_at_ms=now_ms,
    )


def _first_after(events: Sequence[RepairOrInspection], after_ms: int, until_ms: float):
    """The earliest maintenance event with after_ms < time < until_ms (events sorted by time)."""
    for event in events:
        if after_ms < event.event_time_ms < until_ms:
            return event
    return None


def _walk(
    alerts: Sequence[Alert],
    orders: Sequence[WorkOrder],
    maintenance: Sequence[RepairOrInspection],
    now_ms: int,
) -> list[WorkOrder]:
    """Orders of one (asset, mode) after its alerts and maintenance events, in event time."""
    closed = [o for o in orders if o.status == CLOSED]
    current = next((o for o in orders if o.status == OPEN), None)
    result = {o.work_order_id: o for o in orders}
    for alert in sorted(alerts, key=lambda a: (a.feature_time_ms, a.model_name)):
        f = alert.feature_time_ms
        # A feature row at time f uses readings before f, so maintenance exactly at f still
        # belongs to the order's life: close only on maintenance strictly before the alert.
        if current is not None and (
            event := _first_after(maintenance, current.opened_feature_time_ms, f)
        ):
            current = result[current.work_order_id] = _close(current, event, now_ms)
            closed.append(current)
            current = None
        if any(o.covers(f) for o in closed):
            continue  # evidence from a period an order already covered and closed
        if current is None:
            current = _open(alert, now_ms)
            result[current.work_order_id] = current
        elif f > current.latest_feature_time_ms:
            current = result[current.work_order_id] = _with_evidence(current, alert, now_ms)
    if current is not None and (
        event := _first_after(maintenance, current.opened_feature_time_ms, math.inf)
    ):
        result[current.work_order_id] = _close(current, event, now_ms)
    return list(result.values())


def plan_work_orders(
    alerts: Iterable[Alert],
    orders: Iterable[WorkOrder],
    maintenance: Iterable[RepairOrInspection],
    *,
    now_ms: int,
) -> Plan:
    """Decide the work orders a batch of alerts and the maintenance log call for.

    `orders`: every open order, and the closed ones of the alerting assets (so a late alert from
    a period a closed order covered does not open another). `maintenance`: the events of those
    assets (other kinds than repair and inspection are ignored). Applying the plan and planning
    again with the same alerts changes nothing.
    """
    by_key: dict[tuple[str, str], list] = {}
    for alert in alerts:
        by_key.setdefault((alert.asset, alert.failure_mode), [[], []])[0].append(alert)
    before: dict[str, WorkOrder] = {}
    for order in orders:
        before[order.work_order_id] = order
        by_key.setdefault((order.asset, order.failure_mode), [[], []])[1].append(order)
    done: dict[str, list[RepairOrInspection]] = {}
    for event in sorted(maintenance, key=lambda e: e.event_time_ms):
        if event.event in MAINTENANCE_KINDS:
            done.setdefault(event.asset, []).append(event)

    changed: list[WorkOrder] = []
    for (asset, _mode), (key_alerts, key_orders) in sorted(by_key.items()):
        for order in _walk(key_alerts, key_orders, done.get(asset, []), now_ms):
            if before.get(order.work_order_id) != order:
                changed.append(order)
    opened = frozenset(o.work_order_id for o in changed if o.work_order_id not in before)
    closed = frozenset(o.work_order_id for o in changed if o.status == CLOSED)
    updated = frozenset(o.work_order_id for o in changed) - opened - closed
    latest = {o.work_order_id: o for o in (*before.values(), *changed)}
    to_announce = tuple(
        sorted(
            (o for o in latest.values() if o.status == OPEN and o.alerted_at_ms is None),
            key=lambda o: (o.asset, o.failure_mode),
        )
    )
    return Plan(tuple(changed), opened, updated, closed, to_announce)


def alarm_record(order: WorkOrder) -> dict:
    """The JSON alarm of a newly opened work order on `<prefix>.alarms`, keyed by its asset.

    `work_order_id` lets consumers drop the repeat of an alarm a retried batch sent again.
    """
    return {
        "type": "work_order_opened",
        "work_order_id": order.work_order_id,
        "asset": order.asset,
        "asset_class": order.asset_class,
        "failure_mode": order.failure_mode,
        "status": order.status,
        "opened_feature_time": iso_ms(order.opened_feature_time_ms),
        "opened_feature_time_ms": order.opened_feature_time_ms,
        "score": order.latest_score,
        "threshold": order.threshold,
        "horizon_hours": order.horizon_hours,
        "model_name": order.model_name,
        "model_version": order.model_version,
        "model_kind": order.model_kind,
        "evidence": json.loads(order.evidence),
    }
