"""The digital twin's state per asset and sensor: the latest Good value and its liveness (gold layer)."""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from plantlake.contracts import ALIVE, DEAD, STALE

KEY = ("asset", "sensor")
# What "newer" means everywhere in gold (latest_state, the twin-state MERGE): event time first,
# then the later receipt (a re-sent correction), then sequence, then Kafka lineage, which is
# unique per row, so ties are broken the same way on every run and every retry.
STATE_ORDER = (
    "event_time_ms", "receive_time", "sequence", "kafka_topic", "kafka_partition", "kafka_offset",
)  # fmt: skip
STATE_COLUMNS = (
    "asset", "sensor", "asset_class", "quantity", "value", "unit", "quality",
    "event_time", "event_time_ms", "receive_time", "source_protocol", "source_node", "sequence",
    "kafka_topic", "kafka_partition", "kafka_offset",
)  # fmt: skip
LIVENESS_COLUMNS = ("status", "status_reason", "status_since", "status_as_of", "freshness_slo_ms")

# Freshness SLOs per quantity: twice the edge heartbeat (ingest/config/filters.yaml sends a
# deadbanded value at least every 60 s, a state every 5 min) plus slack for the pipeline; window
# features arrive every second, so a minute without one means the DAQ stopped.
DEFAULT_FRESHNESS_SLO_MS: Mapping[str, int] = {
    "temperature": 180_000,
    "pressure": 180_000,
    "flow": 180_000,
    "current": 180_000,
    "speed": 180_000,
    "state": 900_000,
    "vibration": 60_000,
}
DEFAULT_SLO_MS = 300_000

LIFECYCLE_COLUMNS = (
    "kind string, source_node string, asset string, device string, event_time_ms long"
)
_KILL, _STALE_EVENT, _REVIVE = "death", "stale", ("birth", "reconnected")


def good_readings(readings: DataFrame) -> DataFrame:
    """Silver rows that carry a usable value: quality Good and a value that is neither null nor NaN.

    Grain in and out: one reading.
    """
    return readings.where(
        (F.col("quality") == "Good") & F.col("value").isNotNull() & ~F.isnan("value")
    )


def _newest_per_key(rows: DataFrame) -> DataFrame:
    """One row per (asset, sensor): the greatest by STATE_ORDER."""
    payload = [c for c in STATE_COLUMNS if c not in KEY and c not in STATE_ORDER]
    newest = F.max(F.struct(*STATE_ORDER, *payload)).alias("_newest")
    return (
        rows.groupBy(*KEY)
        .agg(newest)
        .select(*KEY, *(F.col(f"_newest.{c}").alias(c) for c in STATE_COLUMNS if c not in KEY))
    )


def latest_state(readings: DataFrame) -> DataFrame:
    """The latest Good value per asset and sensor (Uncertain and Bad readings never count).

    Grain in: one silver.telemetry row. Grain out: one row per (asset, sensor), STATE_COLUMNS;
    the newest by event time, ties broken by receive time, sequence and Kafka lineage.
    """
    return _newest_per_key(good_readings(readings).select(*STATE_COLUMNS))


def newest_state(current: DataFrame, incoming: DataFrame) -> DataFrame:
    """Of two state tables (e.g. gold.twin_state and a batch's latest_state), the newer row per key.

    Grain in and out: one row per (asset, sensor), STATE_COLUMNS.
    """
    both = current.select(*STATE_COLUMNS).unionByName(incoming.select(*STATE_COLUMNS))
    return _newest_per_key(both)


def newer_than(source: str, target: str) -> str:
    """SQL condition: row `source` is newer than row `target` by STATE_ORDER (for MERGE)."""
    fields = ", ".join(f"{source}.{c}" for c in STATE_ORDER)
    other = ", ".join(f"{target}.{c}" for c in STATE_ORDER)
    return f"struct({fields}) > struct({other})"


def _slo_ms(freshness_slo_ms: Mapping[str, int], default_slo_ms: int) -> Column:
    if not freshness_slo_ms:
        return F.lit(default_slo_ms).cast("long")
    table = F.create_map(*(F.lit(x) for kv in sorted(freshness_slo_ms.items()) for x in kv))
    return F.coalesce(table[F.col("quantity")], F.lit(default_slo_ms)).cast("long")


def _lifecycle_groups(lifecycle: DataFrame, *, now_ms: int) -> DataFrame:
    """Latest death, stale and revival (birth/reconnected) time per scope.

    A node-level event (no device, or no asset: Sparkplug NDEATH, a Modbus connection loss,
    an OPC UA session going stale) concerns everything read through its source node; a device
    event only its asset on that node. `rebirth_requested` says nothing about liveness.
    """
    node_level = F.col("device").isNull() | F.col("asset").isNull()
    t = F.col("event_time_ms")
    return (
        lifecycle.where(t <= now_ms)
        .select(
            node_level.alias("node_level"),
            "source_node",
            F.when(~node_level, F.col("asset")).alias("asset"),
            "kind",
            t,
        )
        .groupBy("node_level", "source_node", "asset")
        .agg(
            F.max(F.when(F.col("kind") == _KILL, t)).alias("death_ms"),
            F.max(F.when(F.col("kind") == _STALE_EVENT, t)).alias("stale_ms"),
            F.max(F.when(F.col("kind").isin(*_REVIVE), t)).alias("revive_ms"),
        )
    )


def _verdicts(state: DataFrame, groups: DataFrame) -> DataFrame:
    """Per (asset, sensor): since when a death, or an edge's stale report, outranks its last value.

    A death (or stale report) counts when it is newer than both the last Good value and the
    latest revival of the same scope; a node's events match readings whose source_node is the
    node itself or below it (Modbus reads `endpoint/unit` through the endpoint `endpoint`).
    """
    s, g = state.alias("s"), F.broadcast(groups).alias("g")
    through_node = (F.col("s.source_node") == F.col("g.source_node")) | F.col(
        "s.source_node"
    ).startswith(F.concat(F.col("g.source_node"), F.lit("/")))
    in_scope = through_node & (F.col("g.node_level") | (F.col("s.asset") == F.col("g.asset")))
    cleared_at = F.greatest(F.col("s.event_time_ms"), F.col("g.revive_ms"))
    dead = F.col("g.death_ms") > cleared_at
    stale = F.col("g.stale_ms") > cleared_at
    scope = F.when(F.col("g.node_level"), F.lit("edge node")).otherwise(F.lit("device"))
    return (
        s.join(g, in_scope, "inner")
        .groupBy(F.col("s.asset").alias("asset"), F.col("s.sensor").alias("sensor"))
        .agg(
            F.min(
                F.when(
                    dead,
                    F.struct(
                        F.col("g.death_ms").alias("at"),
                        scope.alias("scope"),
                        F.col("g.source_node").alias("node"),
                    ),
                )
            ).alias("_dead"),
            F.min(F.when(stale, F.col("g.stale_ms"))).alias("_stale_reported_ms"),
        )  # fmt: skip
    )


def liveness(
    state: DataFrame,
    *,
    lifecycle: DataFrame,
    now_ms: int,
    freshness_slo_ms: Mapping[str, int] = DEFAULT_FRESHNESS_SLO_MS,
    default_slo_ms: int = DEFAULT_SLO_MS,
) -> DataFrame:
    """Whether each sensor's twin is alive, stale or dead at `now_ms`, and why.

    - dead: a death certificate (of its device, or of the edge node it is read through) is
      newer than its last Good value and than any later birth/reconnect of the same scope;
    - stale: not dead, and either no Good value within its quantity's freshness SLO
      (`freshness_slo_ms`, else `default_slo_ms`) or the edge reported it stale since;
    - alive otherwise. A sensor that falls silent therefore never stays "alive".

    `status_since` is the death time, the moment the value went past its SLO (or the stale
    report), or for alive the last value's event time; the gold job keeps the earlier
    `status_since` while the status does not change.

    Grain in: state, one row per (asset, sensor) with STATE_COLUMNS; lifecycle, one
    bronze.lifecycle event (LIFECYCLE_COLUMNS). Grain out: one row per (asset, sensor),
    STATE_COLUMNS + LIVENESS_COLUMNS.
    """
    groups = _lifecycle_groups(lifecycle, now_ms=now_ms)
    verdicts = _verdicts(state.select(*KEY, "source_node", "event_time_ms"), groups)
    slo = F.col("freshness_slo_ms")
    overdue_at = F.col("event_time_ms") + slo
    overdue = F.lit(now_ms) > overdue_at
    dead_at = F.col("_dead.at")
    stale_at = F.least(F.col("_stale_reported_ms"), F.when(overdue, overdue_at))
    status = (
        F.when(dead_at.isNotNull(), F.lit(DEAD))
        .when(stale_at.isNotNull(), F.lit(STALE))
        .otherwise(F.lit(ALIVE))
    )
    reason = (
        F.when(
            dead_at.isNotNull(),
            F.format_string(
                "%s %s sent a death certificate after the last Good value",
                F.col("_dead.scope"),
                F.col("_dead.node"),
            ),
        )  # fmt: skip
        .when(
            overdue,
            F.format_string(
                "no Good value within the %d s freshness SLO", (slo / 1000).cast("long")
            ),
        )
        .when(stale_at.isNotNull(), F.lit("the edge reported it stale after the last Good value"))
        .otherwise(F.lit("Good value within the freshness SLO"))
    )
    since_ms = F.when(dead_at.isNotNull(), dead_at).when(stale_at.isNotNull(), stale_at)
    return (
        state.select(*STATE_COLUMNS)
        .withColumn("freshness_slo_ms", _slo_ms(freshness_slo_ms, default_slo_ms))
        .join(verdicts, list(KEY), "left")
        .select(
            *STATE_COLUMNS,
            status.alias("status"),
            reason.alias("status_reason"),
            F.timestamp_millis(F.coalesce(since_ms, F.col("event_time_ms"))).alias("status_since"),
            F.timestamp_millis(F.lit(now_ms)).alias("status_as_of"),
            "freshness_slo_ms",
        )
    )
