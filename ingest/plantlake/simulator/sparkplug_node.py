"""A simulated Sparkplug B 3.0 edge node: one gateway publishing its line's plant assets as devices (ingest simulator).

The node follows the edge-node rules a primary host relies on: its NDEATH (carrying bdSeq) is the
MQTT will, bdSeq increments per MQTT CONNECT, births wait for the primary host's STATE online,
NBIRTH carries bdSeq and `Node Control/Rebirth`, DBIRTH carries typed metrics with units
("engUnit") and aliases, DDATA carries aliases only with seq 0-255 wrapping across all of the
node's messages, and a rebirth NCMD is answered. While the host is offline or the connection is
down, data is buffered and replayed after the births with `is_historical`. Device ids are the
asset names (see `plantlake.ingest.sparkplug.topics` for the asset-path mapping).

Given the plant's launch faults (`launch_faults`, as `plantlake simulate` does), the node acts as
a gateway that ran before the lake came up: its buffer starts with a store-and-forward backlog of
the minutes before the launch, replayed after its first births, and a tag misconfigured with a
wrong unit is declared so in its births until the fault's end, when the node rebirths with the
right unit.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator

import paho.mqtt.client as mqtt

from plantlake.core.clock import now_ms
from plantlake.core.config import EdgeNode, MqttSettings, Settings
from plantlake.ingest.sparkplug.codec import (
    DataType,
    Metric,
    PayloadError,
    decode_payload,
    encode_payload,
)
from plantlake.ingest.sparkplug.topics import (
    BDSEQ_METRIC,
    REBIRTH_METRIC,
    line_of_node,
    parse_state,
    state_topic,
    topic_name,
)
from plantlake.simulator.clock import SimClock
from plantlake.simulator.launch_faults import LaunchFaultKind, LaunchFaults, launch_faults
from plantlake.simulator.plant import Asset, Plant, Sensor, device_time_ms, value_at

# The pre-launch backlog: one sample every 10 s, a minute of samples per DDATA. Coarser than
# live publishing (a simplification), and still finer than the edge's one-minute heartbeats.
BACKLOG_STEP_MS = 10_000
BACKLOG_SAMPLES_PER_MESSAGE = 6

log = logging.getLogger(__name__)


class SimulatedEdgeNode:
    """One edge node. `run(stop_event)` blocks; `skip_seq` and `die_unclean` inject faults."""

    def __init__(
        self,
        mqtt_settings: MqttSettings,
        plant: Plant,
        clock: SimClock,
        node: EdgeNode,
        *,
        publish_interval_s: float = 1.0,
        samples_per_publish: int = 1,
        buffer_limit: int = 10_000,
        client_id: str | None = None,
        launch_faults: LaunchFaults | None = None,
    ):
        self.node = node
        self.plant = plant
        self.clock = clock
        self.publish_interval_s = publish_interval_s
        self.samples_per_publish = samples_per_publish
        self.assets = tuple(
            a for a in plant.by_protocol("sparkplug")
            if a.site == node.group_id and a.line == line_of_node(node.edge_node_id)
        )  # fmt: skip
        # Aliases are unique across the whole edge node, devices included.
        self._aliases: dict[tuple[str, str], int] = {}
        for asset in self.assets:
            for sensor in asset.sensors:
                self._aliases[(asset.name, sensor.name)] = len(self._aliases) + 1
        self._settings = mqtt_settings
        self._commands: queue.Queue[tuple] = queue.Queue()
        self._history: deque[tuple[Asset, list[Metric]]] = deque(maxlen=buffer_limit)
        self._lock = threading.Lock()
        self._seq = 0
        self._bd_seq = 0  # the bdSeq of the next (or current) MQTT CONNECT
        self._session_bd_seq: int | None = None
        self._born = False
        self._host_online = False
        self._state_ts = -1
        self._dead_devices: set[str] = set()
        self.rebirths_answered = 0
        self.births = 0
        self._launch = launch_faults
        # When a tag the last births declared with a wrong unit gets corrected: rebirth then.
        self._unit_fix_ms: int | None = None
        if launch_faults is not None:
            self._store_backlog(launch_faults.backlog_ms)
        password = mqtt_settings.edge_passwords.get(node.edge_node_id)
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"{node.edge_node_id}-sim",
            clean_session=True,  # Sparkplug: edge nodes use clean sessions
            protocol=mqtt.MQTTv311,
        )
        self._client.username_pw_set(
            node.edge_node_id, password.get_secret_value() if password else None
        )
        mqtt_settings.use_tls(self._client)
        self._client.reconnect_delay_set(1, 5)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._set_will()

    @property
    def born(self) -> bool:
        """Births published to a live host: data goes out live rather than to the buffer."""
        return self._born

    @property
    def buffered(self) -> int:
        """DDATA payloads waiting for a host, to be replayed as historical."""
        return len(self._history)

    @property
    def session_bd_seq(self) -> int | None:
        """bdSeq of the current MQTT session (None before the first CONNACK)."""
        return self._session_bd_seq

    # -- MQTT callbacks (paho's thread): enqueue only --------------------------------------

    def _set_will(self) -> None:
        death = encode_payload([Metric(BDSEQ_METRIC, DataType.INT64, self._bd_seq)], seq=None,
                               timestamp_ms=now_ms())  # fmt: skip
        self._client.will_set(self._topic("NDEATH"), death, qos=1, retain=False)

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            log.warning("%s: connect refused: %s", self.node.edge_node_id, reason)
            return
        self._session_bd_seq = self._bd_seq
        # Queued before the subscriptions, so the loop resets before the retained STATE arrives.
        self._commands.put(("connected", b""))
        group, node = self.node.group_id, self.node.edge_node_id
        client.subscribe([(state_topic(self._settings.host_app_id), 1),
                          (topic_name(group, "NCMD", node), 1),
                          (topic_name(group, "DCMD", node, "+"), 1)])  # fmt: skip

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self._born = False  # buffer from now on; the run loop re-births after the next CONNECT
        self._bd_seq = (self._bd_seq + 1) % 256  # the next CONNECT is a new session
        self._set_will()

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == state_topic(self._settings.host_app_id):
            self._commands.put(("state", message.payload))
        elif "/NCMD/" in message.topic:
            self._commands.put(("ncmd", message.payload))

    # -- the node's own loop -----------------------------------------------------------------

    def run(self, stop_event: threading.Event) -> None:
        """Connect, then publish every `publish_interval_s` until `stop_event` is set."""
        self._client.connect_async(self._settings.host, self._settings.port, keepalive=10)
        self._client.loop_start()
        try:
            next_tick = time.monotonic()
            while not stop_event.is_set():
                try:
                    command = self._commands.get(timeout=max(0.0, next_tick - time.monotonic()))
                    self._command(*command)
                    continue
                except queue.Empty:
                    pass
                self.tick()
                next_tick = max(next_tick + self.publish_interval_s, time.monotonic())
        finally:
            self._shutdown()

    def _command(self, kind: str, payload: bytes) -> None:
        if kind == "connected":
            self._born = False
        elif kind == "state":
            state = parse_state(payload)
            if state is None or state[1] < self._state_ts:
                return  # not 3.0 STATE, or an older one delivered late
            self._host_online, self._state_ts = state
            if not self._host_online:
                with self._lock:
                    self._born = False  # stop live data; buffer until the host is back
            elif not self._born:
                self._births()
        elif kind == "ncmd":
            try:
                metrics = decode_payload(payload, aliases={}).metrics
            except PayloadError:
                return
            if any(m.name == REBIRTH_METRIC and m.value is True for m in metrics):
                self.rebirths_answered += 1
                if self._host_online:
                    self._births()

    def tick(self) -> None:
        """One publish interval: a rebirth if a misconfigured tag's unit was corrected since
        the births, then the data (live, or to the buffer while no host is there)."""
        fix = self._unit_fix_ms
        if self._born and fix is not None and self.clock.now_ms() >= fix:
            log.info("%s: a tag's unit was corrected: rebirth", self.node.edge_node_id)
            self._births()
        self._publish_data()

    def _births(self) -> None:
        now = self.clock.now_ms()
        with self._lock:
            if not self._client.is_connected():
                return
            self._seq = 0
            group, node = self.node.group_id, self.node.edge_node_id
            control = [Metric(BDSEQ_METRIC, DataType.INT64, self._session_bd_seq, now),
                       Metric(REBIRTH_METRIC, DataType.BOOLEAN, False, now)]  # fmt: skip
            self._publish(topic_name(group, "NBIRTH", node), control, now, birth=True)
            for asset in self.assets:
                if asset.name not in self._dead_devices:
                    self._publish(topic_name(group, "DBIRTH", node, asset.name),
                                  list(self._metrics(asset, [now])), now, birth=True)  # fmt: skip
            self._born = True
            self.births += 1
            self._unit_fix_ms = self._next_unit_fix(now)
            while self._history:
                asset, metrics = self._history.popleft()
                self._publish(topic_name(group, "DDATA", node, asset.name), metrics, now)

    def _publish_data(self) -> None:
        now = self.clock.now_ms()
        step = self.publish_interval_s * 1000 * self.clock.speed / self.samples_per_publish
        times = [now - int(step * k) for k in reversed(range(self.samples_per_publish))]
        group, node = self.node.group_id, self.node.edge_node_id
        with self._lock:
            for asset in self.assets:
                if asset.name in self._dead_devices:
                    continue
                if asset.dies_at_ms is not None and now >= asset.dies_at_ms:
                    # The device stopped answering: the gateway reports its death.
                    self._dead_devices.add(asset.name)
                    if self._born:
                        self._publish(topic_name(group, "DDEATH", node, asset.name), [], now)
                    continue
                metrics = list(self._metrics(asset, times))
                if self._born:
                    self._publish(topic_name(group, "DDATA", node, asset.name), metrics, now)
                else:
                    self._history.append((asset, [m._replace(is_historical=True) for m in metrics]))

    def _store_backlog(self, backlog_ms: int) -> None:
        """Fill the buffer with what the gateway stored over the `backlog_ms` before now, as
        historical DDATA (replayed after the first births)."""
        now = self.clock.now_ms()
        times = list(range(now - backlog_ms, now, BACKLOG_STEP_MS))
        per = BACKLOG_SAMPLES_PER_MESSAGE
        for chunk in (times[k : k + per] for k in range(0, len(times), per)):
            for asset in self.assets:
                alive = [t for t in chunk if asset.dies_at_ms is None or t < asset.dies_at_ms]
                if alive:
                    metrics = [m._replace(is_historical=True) for m in self._metrics(asset, alive)]
                    self._history.append((asset, metrics))

    def _unit(self, asset: Asset, sensor: Sensor, t_ms: int) -> str | None:
        """The unit the gateway's tag declares: the sensor's, unless misconfigured then."""
        wrong = self._launch.declared_unit(asset.path, sensor.name, t_ms) if self._launch else None
        return wrong or sensor.unit or None

    def _next_unit_fix(self, now: int) -> int | None:
        """When the first tag this node declares with a wrong unit at `now` gets corrected."""
        if self._launch is None:
            return None
        paths = {a.path for a in self.assets}
        ends = [f.end_ms for f in self._launch.faults
                if f.kind is LaunchFaultKind.WRONG_UNIT and f.asset in paths and f.active(now)]  # fmt: skip
        return min(ends, default=None)

    def _metrics(self, asset: Asset, times: list[int]) -> Iterator[Metric]:
        for t in times:
            stamp = device_time_ms(asset, self.plant, t)
            for sensor in asset.sensors:
                # Vibration: value_at gives the per-interval RMS; the kHz waveform stays local.
                value, quality = value_at(self.plant, asset, sensor, t)
                is_state = sensor.quantity == "state"
                yield Metric(
                    sensor.name,
                    DataType.BOOLEAN if is_state else DataType.DOUBLE,
                    bool(value) if is_state else value,
                    stamp,
                    self._aliases[(asset.name, sensor.name)],
                    unit=self._unit(asset, sensor, t),  # only a birth carries it
                    quality=quality,
                )

    def _publish(self, topic: str, metrics: list[Metric], now: int, *, birth=False) -> None:
        """Publish with the next seq; caller holds the lock (seq order = publish order)."""
        payload = encode_payload(metrics, seq=self._seq, timestamp_ms=now, birth=birth)
        self._seq = (self._seq + 1) % 256
        self._client.publish(topic, payload, qos=0)

    def _topic(self, kind: str) -> str:
        return topic_name(self.node.group_id, kind, self.node.edge_node_id)

    def _shutdown(self) -> None:
        """A clean stop: the will is not sent on DISCONNECT, so publish the NDEATH ourselves."""
        if self._client.is_connected() and self._session_bd_seq is not None:
            death = encode_payload([Metric(BDSEQ_METRIC, DataType.INT64, self._session_bd_seq)],
                                   seq=None, timestamp_ms=self.clock.now_ms())  # fmt: skip
            info = self._client.publish(self._topic("NDEATH"), death, qos=1)
            info.wait_for_publish(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()

    # -- fault injection ------------------------------------------------------------------------

    def skip_seq(self, count: int = 1) -> None:
        """Lose `count` sequence numbers, as if messages had been dropped."""
        with self._lock:
            self._seq = (self._seq + count) % 256

    def die_unclean(self) -> None:
        """Drop the TCP connection without DISCONNECT: the broker publishes our will (NDEATH).

        paho then reconnects by itself, with the next bdSeq, and the node re-births.
        """
        sock = self._client.socket()
        # paho types it as a protocol without shutdown; over TCP (and TLS) it is a socket.socket.
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)


def run_edge_node(
    settings: Settings,
    plant: Plant,
    clock: SimClock,
    node: EdgeNode,
    *,
    stop_event: threading.Event,
    publish_interval_s: float = 1.0,
    samples_per_publish: int = 1,
) -> None:
    """Run one simulated edge node, with the plant's launch faults, until `stop_event` is set
    (blocks)."""
    SimulatedEdgeNode(settings.mqtt, plant, clock, node, publish_interval_s=publish_interval_s,
                      samples_per_publish=samples_per_publish,
                      launch_faults=launch_faults(plant)).run(stop_event)  # fmt: skip
