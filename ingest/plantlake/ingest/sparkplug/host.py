"""The Sparkplug B 3.0 primary host application as a pure state machine: MQTT messages in, records out (ingest layer).

`PrimaryHost.handle(topic, payload, now_ms)` returns what to emit (readings, lifecycle events,
dead letters) and which edge nodes to ask for a rebirth; it does no I/O and never raises on bad
input. Per edge node it tracks the session (bdSeq from NBIRTH), the 0-255 wrapping `seq`, and
the alias tables (name, datatype, unit) from NBIRTH/DBIRTH. Asset paths follow `topics.asset_path`.

Choices worth knowing:
- A `seq` ahead of the expected one is held for `reorder_timeout_ms` waiting for the missing
  message; when the wait expires (checked on every message and on `tick`) the held messages are
  processed in order and a rebirth is requested. A `seq` just behind the expected one is a QoS 1
  duplicate or a late message: its data still flows (downstream deduplicates) and ordering state
  is left alone.
- `is_historical` metrics (store-and-forward replays) flow with their original timestamps and
  at most `historical_quality` (default Uncertain): Sparkplug says they must not update live
  state as if current, and Uncertain lets consumers tell them apart without dropping them.
- Death marks metrics stale with the host's receipt time: one DEATH event for the node or
  device and one STALE event per asset that went with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from plantlake.core.contracts import NOT_EPOCH_MS, is_epoch_ms
from plantlake.core.records import DeadLetter, LifecycleEvent, LifecycleKind, Quality, Reading
from plantlake.ingest.sparkplug.codec import (
    NUMERIC,
    Metric,
    MetricInfo,
    PayloadError,
    PbPayload,
    decode_message,
    parse_payload,
)
from plantlake.ingest.sparkplug.topics import (
    BDSEQ_METRIC,
    NAMESPACE,
    Topic,
    asset_path,
    parse_topic,
    topic_name,
)

SOURCE_PROTOCOL = "sparkplug"
_CONTROL_PREFIXES = ("Node Control/", "Device Control/", "Properties/")
_SEVERITY = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}


@dataclass(frozen=True)
class HostOptions:
    """Tuning of the primary host (candidates for a `sparkplug` section in Settings)."""

    reorder_timeout_ms: int = 1000
    # Do not ask the same node again while an earlier rebirth request may still be answered.
    rebirth_retry_ms: int = 10_000
    historical_quality: Quality = Quality.UNCERTAIN


@dataclass(frozen=True, slots=True)
class RebirthRequest:
    """Ask an edge node to republish its births: an NCMD with `Node Control/Rebirth` = true."""

    group: str
    node: str
    reason: str


@dataclass(slots=True)
class HostOutput:
    readings: list[Reading] = field(default_factory=list)
    events: list[LifecycleEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rebirths: list[RebirthRequest] = field(default_factory=list)


@dataclass(slots=True)
class _Device:
    aliases: dict[int, MetricInfo]
    metric_count: int
    online: bool = True


@dataclass(slots=True)
class _Session:
    bd_seq: int
    last_seq: int
    aliases: dict[int, MetricInfo]
    devices: dict[str, _Device] = field(default_factory=dict)
    online: bool = True
    # Messages that arrived ahead of a missing seq: seq -> (topic, message, raw, receive time).
    pending: dict[int, tuple[Topic, PbPayload, bytes, int]] = field(default_factory=dict)
    gap_since_ms: int | None = None


def _worse(a: Quality, b: Quality) -> Quality:
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


def _infos(metrics: tuple[Metric, ...]) -> dict[int, MetricInfo]:
    return {m.alias: MetricInfo(m.name, m.datatype, m.unit) for m in metrics if m.alias is not None}


class PrimaryHost:
    """Sparkplug sessions of every edge node the host has seen."""

    def __init__(self, options: HostOptions | None = None):
        self.options = options or HostOptions()
        self._sessions: dict[str, _Session] = {}
        self._rebirth_at: dict[str, int] = {}

    def is_online(self, group: str, node: str, device: str | None = None) -> bool:
        session = self._sessions.get(f"{group}/{node}")
        if session is None or not session.online:
            return False
        return device is None or (device in session.devices and session.devices[device].online)

    def handle(self, topic: str, payload: bytes, now_ms: int) -> HostOutput:
        """Process one MQTT message received at `now_ms` (host clock)."""
        out = HostOutput()
        parsed = parse_topic(topic)
        if parsed is None:
            if not topic.startswith(f"{NAMESPACE}/STATE/"):
                self._dead(out, topic, payload, now_ms, "not a Sparkplug node or device topic")
            return out
        if parsed.kind in ("NCMD", "DCMD"):
            return out  # commands (ours included) are for edge nodes, not data
        try:
            message = parse_payload(payload)
        except PayloadError as exc:
            self._dead(out, topic, payload, now_ms, str(exc), parsed.node_key)
            return out
        if parsed.kind == "NBIRTH":
            self._nbirth(parsed, message, payload, now_ms, out)
        elif parsed.kind == "NDEATH":
            self._ndeath(parsed, message, now_ms, out)
        else:
            self._sequenced(parsed, message, payload, now_ms, out)
        return out

    def tick(self, now_ms: int) -> HostOutput:
        """Expire reorder waits that have run out; call this periodically."""
        out = HostOutput()
        for session in self._sessions.values():
            if session.gap_since_ms is not None:
                self._expire(session, now_ms, out)
        return out

    # -- node session -------------------------------------------------------------------------

    def _nbirth(self, t: Topic, message: PbPayload, raw: bytes, now: int, out: HostOutput):
        payload = decode_message(message, aliases={})
        bd_seq = next((m.value for m in payload.metrics if m.name == BDSEQ_METRIC), None)
        if not isinstance(bd_seq, int) or isinstance(bd_seq, bool):
            self._dead(out, t, raw, now, "NBIRTH without an integer bdSeq metric", t.node_key)
            self._request_rebirth(t, now, "NBIRTH without bdSeq", out)
            return
        session = _Session(
            bd_seq=bd_seq, last_seq=payload.seq or 0, aliases=_infos(payload.metrics)
        )
        self._sessions[t.node_key] = session
        self._rebirth_at.pop(t.node_key, None)
        out.events.append(
            self._event(LifecycleKind.BIRTH, t, now, payload.timestamp_ms, bd_seq=bd_seq)
        )
        self._emit(t, payload.metrics, payload.errors, payload.seq, raw, now, out)

    def _ndeath(self, t: Topic, message: PbPayload, now: int, out: HostOutput) -> None:
        payload = decode_message(message, aliases={})
        bd_seq = next((m.value for m in payload.metrics if m.name == BDSEQ_METRIC), None)
        session = self._sessions.get(t.node_key)
        # A will from an earlier connection (or a duplicate) must not kill the current session.
        if session is None or not session.online or bd_seq != session.bd_seq:
            return
        self._flush(session, now, out)
        session.online = False
        # session.bd_seq: equal to the will's (checked above), and an int whatever type it came as.
        out.events.append(self._event(LifecycleKind.DEATH, t, now, now, bd_seq=session.bd_seq))
        for device_id, device in session.devices.items():
            if device.online:
                device.online = False
                self._stale(t, device_id, device, now, out, session.bd_seq)

    def _stale(self, t: Topic, device_id: str, device: _Device, now: int, out: HostOutput,
               bd_seq: int | None) -> None:  # fmt: skip
        out.events.append(
            LifecycleEvent(LifecycleKind.STALE, SOURCE_PROTOCOL, t.node_key, now, now,
                           device=device_id, asset=asset_path(t.group, t.node, device_id),
                           bd_seq=bd_seq, detail=f"{device.metric_count} metrics stale")
        )  # fmt: skip

    # -- sequenced messages (everything but NBIRTH and NDEATH) --------------------------------

    def _sequenced(self, t: Topic, message: PbPayload, raw: bytes, now: int, out: HostOutput):
        session = self._sessions.get(t.node_key)
        if session is None or not session.online:
            reason = f"{t.kind} before NBIRTH (no live session)"
            self._dead(out, t, raw, now, reason, t.node_key)
            self._request_rebirth(t, now, reason, out)
            return
        if not message.HasField("seq"):
            self._dead(out, t, raw, now, f"{t.kind} without seq", t.node_key)
            return
        seq = message.seq
        expected = (session.last_seq + 1) % 256
        if seq == expected:
            self._process(session, t, message, raw, now, out)
            session.last_seq = seq
            self._drain(session, out)
        elif (seq - expected) % 256 < 128:
            session.pending[seq] = (t, message, raw, now)
            if session.gap_since_ms is None:
                session.gap_since_ms = now
            self._expire(session, now, out)
        else:
            self._process(session, t, message, raw, now, out)  # duplicate or late: still data

    def _drain(self, session: _Session, out: HostOutput) -> None:
        while (nxt := (session.last_seq + 1) % 256) in session.pending:
            t, message, raw, received = session.pending.pop(nxt)
            self._process(session, t, message, raw, received, out)
            session.last_seq = nxt
        if not session.pending:
            session.gap_since_ms = None

    def _expire(self, session: _Session, now: int, out: HostOutput) -> None:
        if (
            session.gap_since_ms is None
            or now - session.gap_since_ms < self.options.reorder_timeout_ms
        ):
            return
        expected = (session.last_seq + 1) % 256
        first = min(session.pending, key=lambda s: (s - expected) % 256)
        t = session.pending[first][0]
        self._flush(session, now, out)
        self._request_rebirth(t, now, f"seq gap: expected {expected}, got {first}", out)

    def _flush(self, session: _Session, now: int, out: HostOutput) -> None:
        """Process held messages in seq order, skipping over the missing ones."""
        expected = (session.last_seq + 1) % 256
        for seq in sorted(session.pending, key=lambda s: (s - expected) % 256):
            t, message, raw, received = session.pending[seq]
            self._process(session, t, message, raw, received, out)
            session.last_seq = seq
        session.pending.clear()
        session.gap_since_ms = None

    def _process(self, session: _Session, t: Topic, message: PbPayload, raw: bytes, now: int,
                 out: HostOutput) -> None:  # fmt: skip
        if t.kind == "DBIRTH":
            payload = decode_message(message, aliases={})
            aliases = _infos(payload.metrics)
            session.devices[t.device] = _Device(aliases, len(payload.metrics))  # type: ignore[index]
            out.events.append(self._event(LifecycleKind.BIRTH, t, now, payload.timestamp_ms,
                                          bd_seq=session.bd_seq))  # fmt: skip
            self._emit(t, payload.metrics, payload.errors, payload.seq, raw, now, out)
            return
        if t.kind == "NDATA":
            aliases = session.aliases
        else:
            device = session.devices.get(t.device)  # type: ignore[arg-type]
            if device is None or not device.online:
                self._dead(out, t, raw, now, f"{t.kind} before DBIRTH", t.node_key)
                self._request_rebirth(t, now, f"{t.kind} for {t.device} before DBIRTH", out)
                return
            if t.kind == "DDEATH":
                device.online = False
                out.events.append(self._event(LifecycleKind.DEATH, t, now, now,
                                              bd_seq=session.bd_seq))  # fmt: skip
                self._stale(t, t.device, device, now, out, session.bd_seq)  # type: ignore[arg-type]
                return
            aliases = device.aliases
        payload = decode_message(message, aliases=aliases)
        self._emit(t, payload.metrics, payload.errors, payload.seq, raw, now, out)
        if payload.unknown_aliases:
            self._request_rebirth(t, now, f"unknown aliases {list(payload.unknown_aliases)}", out)

    # -- output -------------------------------------------------------------------------------

    def _emit(self, t: Topic, metrics: tuple[Metric, ...], errors: tuple[str, ...],
              seq: int | None, raw: bytes, now: int, out: HostOutput) -> None:  # fmt: skip
        asset = asset_path(t.group, t.node, t.device)
        historical = self.options.historical_quality
        problems = list(errors)
        readings = out.readings
        for m in metrics:
            name = m.name
            if name == BDSEQ_METRIC or name.startswith(_CONTROL_PREFIXES):
                continue
            if m.datatype not in NUMERIC:
                problems.append(f"metric {name!r}: {m.datatype.name} is not a numeric reading")
                continue
            if m.timestamp_ms is not None and not is_epoch_ms(m.timestamp_ms):
                problems.append(f"metric {name!r}: timestamp {m.timestamp_ms} {NOT_EPOCH_MS}")
                continue
            value = None if m.value is None else float(m.value)
            if value is not None and math.isinf(value):  # an overflow, not a measurement
                problems.append(f"metric {name!r}: value {value} is not a number a sensor reads")
                continue
            quality = m.quality if m.value is not None else Quality.BAD
            if m.is_historical:
                quality = _worse(quality, historical)
            readings.append(
                Reading(asset, name, value, m.unit, quality,
                        m.timestamp_ms if m.timestamp_ms is not None else now, now,
                        SOURCE_PROTOCOL, t.node_key, seq)
            )  # fmt: skip
        if problems:
            self._dead(out, t, raw, now, f"{t.kind}: " + "; ".join(problems), t.node_key)

    def _request_rebirth(self, t: Topic, now: int, reason: str, out: HostOutput) -> None:
        last = self._rebirth_at.get(t.node_key)
        if last is not None and now - last < self.options.rebirth_retry_ms:
            return
        self._rebirth_at[t.node_key] = now
        out.rebirths.append(RebirthRequest(t.group, t.node, reason))
        session = self._sessions.get(t.node_key)
        out.events.append(
            LifecycleEvent(LifecycleKind.REBIRTH_REQUESTED, SOURCE_PROTOCOL, t.node_key, now, now,
                           bd_seq=session.bd_seq if session else None, detail=reason)
        )  # fmt: skip

    @staticmethod
    def _event(kind: LifecycleKind, t: Topic, now: int, event_time: int | None, *,
               bd_seq: int | None) -> LifecycleEvent:  # fmt: skip
        return LifecycleEvent(
            kind, SOURCE_PROTOCOL, t.node_key, event_time if event_time is not None else now, now,
            device=t.device, asset=asset_path(t.group, t.node, t.device), bd_seq=bd_seq,
        )  # fmt: skip

    @staticmethod
    def _dead(out: HostOutput, origin: Topic | str, raw: bytes, now: int, reason: str,
              node: str | None = None) -> None:  # fmt: skip
        topic = (
            origin
            if isinstance(origin, str)
            else topic_name(origin.group, origin.kind, origin.node, origin.device)
        )
        out.dead_letters.append(
            DeadLetter(SOURCE_PROTOCOL, node or topic, reason, raw, now, origin=topic)
        )
