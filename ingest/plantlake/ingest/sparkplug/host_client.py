"""The Sparkplug B primary host application on MQTT: STATE, subscription, rebirth commands (ingest layer, I/O adapter).

paho's network thread only enqueues what arrives (with the host's receipt time); one worker
loop feeds `PrimaryHost`, hands its output to an `EdgeSink` and publishes the rebirth NCMDs. The
STATE birth and the will (STATE offline) carry the same timestamp, as Sparkplug 3.0 requires.

Nothing is acknowledged before it is stored. The host acknowledges a QoS 1 message (PUBACK) only
after the sink has stored what came of it (the edge buffer's append returned), and it keeps an
MQTT 5 session that outlives its connection for `mqtt.host_session_expiry_s`. Killed with
messages in its inbox, the host gets them again from the broker when it restarts, together with
what the broker queued meanwhile. (Sparkplug requires clean sessions of edge nodes, not of host
applications.) A clean stop ends the session, since edge nodes hold their data while the
host's STATE says offline. The host also waits for a broker that is down when it starts.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from plantlake.core.clock import now_ms
from plantlake.core.config import MqttSettings, Settings
from plantlake.core.errors import SourceError
from plantlake.core.records import LifecycleEvent, LifecycleKind
from plantlake.ingest.edge import EdgeSink
from plantlake.ingest.sparkplug.codec import DataType, Metric, encode_payload
from plantlake.ingest.sparkplug.host import (
    SOURCE_PROTOCOL,
    HostOptions,
    HostOutput,
    PrimaryHost,
    RebirthRequest,
)
from plantlake.ingest.sparkplug.topics import (
    NAMESPACE,
    REBIRTH_METRIC,
    state_payload,
    state_topic,
    topic_name,
)

log = logging.getLogger(__name__)
_RECONNECTED = "<reconnected>"
MAX_BATCH = 200  # MQTT messages handled per buffer append
# How many unacknowledged QoS 1 messages the broker may send at once (MQTT 5 Receive Maximum):
# acknowledging only after the buffer append must not starve the batches above.
RECEIVE_MAXIMUM = 1000


class HostClient:
    """Runs a `PrimaryHost` against a broker; `run(stop_event)` blocks until stopped."""

    def __init__(
        self,
        mqtt_settings: MqttSettings,
        sink: EdgeSink,
        *,
        options: HostOptions | None = None,
        client_id: str | None = None,
        tick_s: float = 0.1,
    ):
        self.host = PrimaryHost(options)
        self.sink = sink
        self.online = threading.Event()  # set while STATE online is published
        self._settings = mqtt_settings
        self._tick_s = tick_s
        # (topic, payload, receipt time, MQTT message id, QoS): the id to acknowledge once stored.
        self._inbox: queue.SimpleQueue[tuple[str, bytes, int, int, int]] = queue.SimpleQueue()
        self._refused: str | None = None
        self._connects = 0
        self._state_topic = state_topic(mqtt_settings.host_app_id)
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or mqtt_settings.host_app_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        self._client.username_pw_set(
            mqtt_settings.host_username, mqtt_settings.host_password.get_secret_value()
        )
        mqtt_settings.use_tls(self._client)
        self._client.reconnect_delay_set(1, 10)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._new_state_timestamp()

    def _new_state_timestamp(self) -> None:
        self._state_ts = now_ms()
        offline = state_payload(online=False, timestamp_ms=self._state_ts)
        self._client.will_set(self._state_topic, offline, qos=1, retain=True)

    # -- paho's thread ---------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            return
        # Subscribe first; STATE online follows the SUBACK, so no birth can be missed.
        client.subscribe(f"{NAMESPACE}/#", qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        online = state_payload(online=True, timestamp_ms=self._state_ts)
        client.publish(self._state_topic, online, qos=1, retain=True)
        self._connects += 1
        if self._connects > 1:
            self._inbox.put((_RECONNECTED, b"", now_ms(), 0, 0))
        self.online.set()

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self.online.clear()
        self._new_state_timestamp()  # the next session's will and birth share a new timestamp

    def _on_message(self, client, userdata, message) -> None:
        self._inbox.put((message.topic, message.payload, now_ms(), message.mid, message.qos))

    # -- the worker loop --------------------------------------------------------------------------

    def run(self, stop_event: threading.Event) -> None:
        """Connect, then process messages until `stop_event` is set. Raises SourceError."""
        mqtt_settings = self._settings
        where = f"mqtt://{mqtt_settings.host}:{mqtt_settings.port}"
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = mqtt_settings.host_session_expiry_s
        session.ReceiveMaximum = RECEIVE_MAXIMUM
        # connect_async: paho's loop retries a broker that is down (1 to 10 s apart) until it
        # answers or we stop; only a refused login ends the run.
        self._client.connect_async(mqtt_settings.host, mqtt_settings.port, keepalive=10,
                                   clean_start=False, properties=session)  # fmt: skip
        self._client.loop_start()
        waiting_since = time.monotonic()
        try:
            next_tick = time.monotonic() + self._tick_s
            while not stop_event.is_set():
                if self._refused:
                    raise SourceError(
                        f"The MQTT broker at {where} refused {mqtt_settings.host_username}: "
                        f"{self._refused}.",
                        hint="`plantlake up` writes the broker's password file from the settings.",
                    )
                if not self.online.is_set() and time.monotonic() - waiting_since > 30:
                    log.warning("MQTT broker at %s not answering; still trying", where)
                    waiting_since = time.monotonic()
                try:
                    batch = [self._inbox.get(timeout=self._tick_s)]
                except queue.Empty:
                    batch = []
                # Whatever else is already waiting goes into the same buffer append: one
                # transaction per batch instead of per payload, acknowledged after it.
                while batch and len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._inbox.get_nowait())
                    except queue.Empty:
                        break
                outputs = []
                for topic, payload, received, _mid, _qos in batch:
                    if topic == _RECONNECTED:
                        self.sink.lifecycle(LifecycleEvent(
                            LifecycleKind.RECONNECTED, SOURCE_PROTOCOL,
                            mqtt_settings.host_app_id, received, received,
                        ))  # fmt: skip
                    else:
                        outputs.append(self.host.handle(topic, payload, received))
                if outputs:
                    self._emit_all(outputs)
                for _topic, _payload, _received, mid, qos in batch:
                    if qos:  # stored (the sink returned): the broker may forget it
                        self._client.ack(mid, qos)
                if time.monotonic() >= next_tick:
                    self._emit(self.host.tick(now_ms()))
                    next_tick = time.monotonic() + self._tick_s
        finally:
            self._shutdown()

    def _emit_all(self, outputs: list[HostOutput]) -> None:
        readings = [r for out in outputs for r in out.readings]
        if readings:
            self.sink.readings(readings)
        for out in outputs:
            self._emit(out, readings=False)

    def _emit(self, out: HostOutput, *, readings: bool = True) -> None:
        if readings and out.readings:
            self.sink.readings(out.readings)
        for event in out.events:
            self.sink.lifecycle(event)
        for item in out.dead_letters:
            self.sink.dead_letter(item)
        for request in out.rebirths:
            self._rebirth(request)

    def _rebirth(self, request: RebirthRequest) -> None:
        now = now_ms()
        command = Metric(REBIRTH_METRIC, DataType.BOOLEAN, True, now)
        payload = encode_payload([command], seq=None, timestamp_ms=now)
        log.info("rebirth request to %s/%s: %s", request.group, request.node, request.reason)
        self._client.publish(topic_name(request.group, "NCMD", request.node), payload, qos=0)

    def _shutdown(self) -> None:
        """A clean stop: the will is not sent on DISCONNECT, so publish STATE offline ourselves,
        and end the session (expiry 0): nothing need be kept for a host that was stopped."""
        if self._client.is_connected():
            offline = state_payload(online=False, timestamp_ms=self._state_ts)
            info = self._client.publish(self._state_topic, offline, qos=1, retain=True)
            info.wait_for_publish(timeout=5)
        ended = Properties(PacketTypes.DISCONNECT)
        ended.SessionExpiryInterval = 0
        self._client.disconnect(properties=ended)
        self._client.loop_stop()


def run_host(
    settings: Settings,
    sink: EdgeSink,
    *,
    stop_event: threading.Event,
    options: HostOptions | None = None,
) -> None:
    """Run the primary host application until `stop_event` is set (blocks; raises SourceError)."""
    HostClient(settings.mqtt, sink, options=options).run(stop_event)
