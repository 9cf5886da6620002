"""The digital twin as a fold over readings and lifecycle events, in plain Python (gold layer logic).

The hot path (`plantlake.pipelines.jobs.hot_path`) feeds every reading and lifecycle event from Kafka
into a `Twin` and writes its rows to gold.twin_state. The fold is idempotent: a reading the twin
already holds, or an older one, changes nothing, so a replay after a crash converges to the same
rows as an uninterrupted run (newest wins by STATE_ORDER, as the Spark jobs order rows).

Liveness per sensor, at a given clock `now_ms`:
- dead: a death certificate of its device, or of the edge node it is read through, is newer than
  its last Good value and than any later birth/reconnect of the same scope;
- stale: not dead, and either no Good value within its quantity's freshness SLO or the edge
  reported it stale since;
- alive otherwise. A sensor that falls silent therefore never stays "alive".
`status_since` is the death time, the moment the value went past its SLO (or the stale report),
or for alive the last value's event time, and stays as it was while the status does not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from plantlake.core.contracts import ALIVE, DEAD, STALE

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
_KILL, _STALE_EVENT, _REVIVE = "death", "stale", ("birth", "reconnected")


@dataclass(slots=True)
class TwinRow:
    """One gold.twin_state row: the latest Good value of a sensor, its lineage and liveness."""

    asset: str
    sensor: str
    asset_class: str | None
    quantity: str | None
    value: float
    unit: str | None
    quality: str
    event_time_ms: int
    receive_time_ms: int
    source_protocol: str
    source_node: str
    sequence: int | None
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    status: str = ALIVE
    status_reason: str = ""
    status_since_ms: int = 0
    status_as_of_ms: int = 0
    freshness_slo_ms: int = DEFAULT_SLO_MS

    def order(self) -> tuple:
        """STATE_ORDER as a sort key: event time, receipt, sequence (null first), Kafka lineage."""
        seq = (0, 0) if self.sequence is None else (1, self.sequence)
        return (self.event_time_ms, self.receive_time_ms, seq,
                self.kafka_topic, self.kafka_partition, self.kafka_offset)  # fmt: skip


@dataclass(slots=True)
class _Scope:
    death_ms: int | None = None
    stale_ms: int | None = None
    revive_ms: int | None = None


def _later(a: int | None, b: int) -> int:
    return b if a is None or b > a else a


@dataclass
class Lifecycle:
    """Latest death, stale report and revival per scope, from lifecycle events.

    A node-level event (no device, or no asset: Sparkplug NDEATH, a Modbus connection loss, an
    OPC UA session going stale) concerns everything read through its source node; a device event
    only its asset on that node. `rebirth_requested` says nothing about liveness. Events stamped
    after the clock wait in `pending` until the clock reaches them.
    """

    scopes: dict[tuple[bool, str, str | None], _Scope] = field(default_factory=dict)
    pending: list[Mapping] = field(default_factory=list)

    def add(self, event: Mapping, *, now_ms: int) -> None:
        if event["event_time_ms"] > now_ms:
            self.pending.append(event)
            return
        node_level = event.get("device") is None or event.get("asset") is None
        key = (node_level, event["source_node"], None if node_level else event["asset"])
        kind, t = event["kind"], event["event_time_ms"]
        scope = self.scopes.setdefault(key, _Scope())
        if kind == _KILL:
            scope.death_ms = _later(scope.death_ms, t)
        elif kind == _STALE_EVENT:
            scope.stale_ms = _later(scope.stale_ms, t)
        elif kind in _REVIVE:
            scope.revive_ms = _later(scope.revive_ms, t)

    def advance(self, now_ms: int) -> None:
        """Apply pending events whose time has come."""
        due = [e for e in self.pending if e["event_time_ms"] <= now_ms]
        if due:
            self.pending = [e for e in self.pending if e["event_time_ms"] > now_ms]
            for event in due:
                self.add(event, now_ms=now_ms)

    def _matching(self, source_node: str, asset: str) -> Iterable[tuple[bool, str, _Scope]]:
        # A node's events match readings whose source_node is the node or below it
        # (Modbus reads `endpoint/unit` through the endpoint `endpoint`).
        nodes = [source_node[:i] for i, c in enumerate(source_node) if c == "/"] + [source_node]
        for node in nodes:
            for node_level, key_asset in ((True, None), (False, asset)):
                scope = self.scopes.get((node_level, node, key_asset))
                if scope is not None:
                    yield node_level, node, scope

    def verdict(self, source_node: str, asset: str, last_good_ms: int):
        """(death (time, scope word, node) or None, earliest stale report or None) for a sensor."""
        dead, stale = None, None
        for node_level, node, scope in self._matching(source_node, asset):
            cleared = (
                last_good_ms if scope.revive_ms is None else max(last_good_ms, scope.revive_ms)
            )
            if scope.death_ms is not None and scope.death_ms > cleared:
                candidate = (scope.death_ms, "edge node" if node_level else "device", node)
                dead = candidate if dead is None else min(dead, candidate)
            if scope.stale_ms is not None and scope.stale_ms > cleared:
                stale = scope.stale_ms if stale is None else min(stale, scope.stale_ms)
        return dead, stale


def liveness(row: TwinRow, lifecycle: Lifecycle, *, now_ms: int) -> tuple[str, str, int]:
    """(status, reason, since_ms) of one twin row at `now_ms` (see the module doc)."""
    dead, stale_reported = lifecycle.verdict(row.source_node, row.asset, row.event_time_ms)
    slo = row.freshness_slo_ms
    overdue_at = row.event_time_ms + slo
    overdue = now_ms > overdue_at
    if dead is not None:
        at, scope, node = dead
        return DEAD, f"{scope} {node} sent a death certificate after the last Good value", at
    if overdue:
        # Stale since the earlier of the edge's report and the SLO running out.
        since = overdue_at if stale_reported is None else min(stale_reported, overdue_at)
        return STALE, f"no Good value within the {slo // 1000} s freshness SLO", since
    if stale_reported is not None:
        return STALE, "the edge reported it stale after the last Good value", stale_reported
    return ALIVE, "Good value within the freshness SLO", row.event_time_ms


@dataclass
class Twin:
    """Twin rows by (asset, sensor), folded from Good kept readings and lifecycle events."""

    freshness_slo_ms: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_FRESHNESS_SLO_MS)
    )
    default_slo_ms: int = DEFAULT_SLO_MS
    rows: dict[tuple[str, str], TwinRow] = field(default_factory=dict)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)

    def slo_ms(self, quantity: str | None) -> int:
        return self.freshness_slo_ms.get(quantity or "", self.default_slo_ms)

    def offer(self, candidate: TwinRow) -> bool:
        """Keep `candidate` if it is newer than the sensor's row; True when the row changed.

        Liveness is settled by `refresh`; a new row starts from its predecessor's status.
        """
        key = (candidate.asset, candidate.sensor)
        current = self.rows.get(key)
        if current is not None and candidate.order() <= current.order():
            return False
        candidate.freshness_slo_ms = self.slo_ms(candidate.quantity)
        if current is not None:
            candidate.status, candidate.status_reason = current.status, current.status_reason
            candidate.status_since_ms = current.status_since_ms
        else:
            candidate.status = ""  # no status yet: refresh always sets it
        self.rows[key] = candidate
        return True

    def refresh(self, now_ms: int, keys: Iterable[tuple[str, str]] | None = None) -> set:
        """Recompute liveness at `now_ms` (of `keys`, default every row); the keys whose status or
        reason changed. `status_since` is kept while the status stays the same."""
        self.lifecycle.advance(now_ms)
        changed = set()
        for key in self.rows if keys is None else keys:
            row = self.rows[key]
            status, reason, since = liveness(row, self.lifecycle, now_ms=now_ms)
            if status != row.status or reason != row.status_reason:
                changed.add(key)
                if status != row.status:
                    row.status_since_ms = since
                row.status, row.status_reason = status, reason
            row.status_as_of_ms = now_ms
        return changed
