"""The twin overview as the page shows it: every asset, each sensor's latest value, age and
liveness, worst first (workbench layer, pure view-model logic over frames already read).

A sensor is never shown healthier than the lake says, nor healthier than its age allows:
- dead and stale come from gold.twin_state as the hot path judged them;
- an `alive` row whose value is older than its freshness SLO is shown stale here, because the
  hot path may have stopped judging (it would have marked it stale itself);
- a sensor the registry lists with no twin row, and an asset with none at all, is "no data";
- an asset is as bad as its worst sensor (one dead sensor makes the asset dead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from plantlake.core.contracts import ALIVE, DEAD, STALE, TWIN_STATUSES
from plantlake.workbench.charts import Sparkline, sparkline
from plantlake.workbench.display import format_age, format_time, format_value, number, text, to_ms

NO_DATA = "no_data"
# Worst first: the order sensors and assets are listed in, and how an asset's sensors combine.
STATUS_ORDER = (DEAD, STALE, NO_DATA, ALIVE)
SEVERITY = {status: rank for rank, status in enumerate(STATUS_ORDER)}
STATUS_LABELS = {DEAD: "DEAD", STALE: "STALE", NO_DATA: "NO DATA", ALIVE: "alive"}
TREND_SPAN_MS = 2 * 3600_000


@dataclass(frozen=True)
class SensorView:
    asset: str
    sensor: str
    quantity: str | None
    value_text: str
    event_ms: int | None
    age_s: float | None
    status: str
    status_reason: str
    since_ms: int | None
    trend: Sparkline | None = None

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def age_text(self) -> str:
        return format_age(self.age_s)

    @property
    def since_text(self) -> str:
        return format_time(self.since_ms)

    @property
    def event_text(self) -> str:
        return format_time(self.event_ms)


@dataclass(frozen=True)
class AssetView:
    asset: str
    asset_class: str | None
    status: str
    reason: str
    sensors: tuple[SensorView, ...]

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]


@dataclass(frozen=True)
class TwinOverview:
    assets: tuple[AssetView, ...]
    now_ms: int
    sensor_counts: Mapping[str, int] = field(default_factory=dict)  # every status, zeros too
    asset_counts: Mapping[str, int] = field(default_factory=dict)
    judged_ms: int | None = None  # the newest status_as_of: when the hot path last judged

    @property
    def empty(self) -> bool:
        return not self.assets

    @property
    def now_text(self) -> str:
        return format_time(self.now_ms)

    @property
    def judged_age_text(self) -> str:
        return format_age(None if self.judged_ms is None else (self.now_ms - self.judged_ms) / 1000)

    @property
    def dead_sensors(self) -> list[SensorView]:
        return [s for a in self.assets for s in a.sensors if s.status == DEAD]


def sensor_status(row: Mapping[str, Any], *, now_ms: int) -> tuple[str, str, int | None]:
    """(status, reason, since ms) of one gold.twin_state row as of `now_ms`."""
    status = text(row.get("status"))
    reason = text(row.get("status_reason")) or ""
    since = to_ms(row.get("status_since"))
    event_ms = to_ms(row.get("event_time_ms"))
    if status not in TWIN_STATUSES:
        return STALE, f"unknown status {status!r} in gold.twin_state", since
    if status == ALIVE and event_ms is not None:
        slo_ms = to_ms(row.get("freshness_slo_ms"))
        if slo_ms is not None and now_ms - event_ms > slo_ms:
            judged = to_ms(row.get("status_as_of"))
            when = (
                ""
                if judged is None
                else f"; last judged alive {format_age((now_ms - judged) / 1000)} ago"
            )
            reason = f"no Good value within the {slo_ms // 1000} s freshness SLO{when}"
            return STALE, reason, event_ms + slo_ms
    return status, reason, since


def _current_registry(registry: pd.DataFrame, now_ms: int) -> dict[tuple[str, str], dict]:
    """(asset, sensor) -> the registry row valid at `now_ms`."""
    rows: dict[tuple[str, str], dict] = {}
    for row in registry.to_dict("records"):
        start, end = to_ms(row.get("valid_from")), to_ms(row.get("valid_to"))
        if (start is None or start <= now_ms) and (end is None or now_ms < end):
            rows[(str(row["asset"]), str(row["sensor"]))] = row
    return rows


def trend_points(trends: pd.DataFrame) -> dict[tuple[str, str], list[tuple[float, float | None]]]:
    """(asset, sensor) -> [(window start ms, mean)] of gold.telemetry_1m rows."""
    points: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
    if trends.empty:
        return points
    columns = ("asset", "sensor", "window_start_ms", "mean")
    for asset, sensor, start, mean in trends[list(columns)].itertuples(index=False):
        start_ms = to_ms(start)
        if start_ms is not None:
            points.setdefault((asset, sensor), []).append((start_ms, number(mean)))
    return points


def _asset_reason(sensors: Iterable[SensorView]) -> str:
    sensors = list(sensors)
    counts = {s: sum(1 for v in sensors if v.status == s) for s in STATUS_ORDER}
    if counts[NO_DATA] == len(sensors):
        return f"no data from any of its {len(sensors)} sensors"
    bad = [f"{counts[s]} {STATUS_LABELS[s].lower()}" for s in (DEAD, STALE, NO_DATA) if counts[s]]
    if not bad:
        return f"all {len(sensors)} sensors alive"
    return f"{', '.join(bad)} of {len(sensors)} sensors"


def twin_overview(
    twin: pd.DataFrame,
    registry: pd.DataFrame,
    trends: pd.DataFrame | None = None,
    *,
    now_ms: int,
    span_ms: int = TREND_SPAN_MS,
) -> TwinOverview:
    """Every asset of gold.twin_state and of the registry (rows valid now), each sensor with its
    value, age and status, and a sparkline of gold.telemetry_1m's `mean` over the last `span_ms`
    when `trends` is given. Worst first: dead, stale, no data, alive; then by name."""
    points = trend_points(trends) if trends is not None else {}
    known = _current_registry(registry, now_ms)
    sensors: dict[tuple[str, str], SensorView] = {}
    classes: dict[str, str | None] = {}
    judged: list[int] = []
    for row in twin.to_dict("records"):
        key = (str(row["asset"]), str(row["sensor"]))
        status, reason, since = sensor_status(row, now_ms=now_ms)
        event_ms = to_ms(row.get("event_time_ms"))
        if (as_of := to_ms(row.get("status_as_of"))) is not None:
            judged.append(as_of)
        classes.setdefault(key[0], text(row.get("asset_class")))
        sensors[key] = SensorView(
            asset=key[0],
            sensor=key[1],
            quantity=text(row.get("quantity")),
            value_text=format_value(number(row.get("value")), text(row.get("unit"))),
            event_ms=event_ms,
            age_s=None if event_ms is None else (now_ms - event_ms) / 1000,
            status=status,
            status_reason=reason,
            since_ms=since,
        )
    for key, row in known.items():
        classes.setdefault(key[0], text(row.get("asset_class")))
        if key not in sensors:
            sensors[key] = SensorView(
                asset=key[0], sensor=key[1], quantity=text(row.get("quantity")), value_text="-",
                event_ms=None, age_s=None, status=NO_DATA,
                status_reason="in the registry, but no Good value in gold.twin_state",
                since_ms=None,
            )  # fmt: skip
    by_asset: dict[str, list[SensorView]] = {}
    for key, view in sensors.items():
        if points:
            trend = sparkline(points.get(key, ()), start_ms=now_ms - span_ms, end_ms=now_ms)
            view = replace(view, trend=trend)
        by_asset.setdefault(key[0], []).append(view)
    assets = []
    for asset, views in by_asset.items():
        views.sort(key=lambda v: (SEVERITY[v.status], v.sensor))
        worst = views[0].status
        assets.append(
            AssetView(asset, classes.get(asset), worst, _asset_reason(views), tuple(views))
        )
    assets.sort(key=lambda a: (SEVERITY[a.status], a.asset))
    return TwinOverview(
        assets=tuple(assets),
        now_ms=now_ms,
        sensor_counts={s: sum(1 for v in sensors.values() if v.status == s) for s in STATUS_ORDER},
        asset_counts={s: sum(1 for a in assets if a.status == s) for s in STATUS_ORDER},
        judged_ms=max(judged) if judged else None,
    )
