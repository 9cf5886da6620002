"""Discovery of Sparkplug B metrics from the births on the broker, for a registry draft (ingest layer).

`birth_signals` (pure) reads one NBIRTH or DBIRTH with the host's codec: every numeric metric
with its datatype and engUnit, at the asset `topics.asset_path` names. `discover_sparkplug`
(I/O) listens to the births for a while and collects them.

It only listens: it is not a host application (no STATE), and sends no rebirth command to
nodes that feed production. Births are not retained, so a node is seen only if it births in
the window: when it connects, or when the primary host comes online (Sparkplug 3.0 nodes
re-birth then). Start the discovery first, then restart the nodes or the primary host.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import paho.mqtt.client as mqtt

from plantlake.core import clock
from plantlake.core.config import MqttSettings
from plantlake.core.errors import SourceError
from plantlake.ingest.discovery import Discovery, Signal
from plantlake.ingest.sparkplug.codec import NUMERIC, decode_payload
from plantlake.ingest.sparkplug.topics import BDSEQ_METRIC, NAMESPACE, asset_path, parse_topic

log = logging.getLogger(__name__)
BIRTHS = ("NBIRTH", "DBIRTH")
# Session and control metrics the primary host does not turn into readings (as in host.py).
_CONTROL_PREFIXES = ("Node Control/", "Device Control/", "Properties/")


def birth_signals(topic: str, payload: bytes) -> tuple[tuple[Signal, ...], tuple[str, ...]]:
    """(signals, notes) of one birth: a signal per data metric, addressed
    group/edge_node/device/metric (group/edge_node/metric for a node's own metrics); notes for
    metrics that do not decode. Other topics give nothing. Raises codec.PayloadError when the
    payload is not Sparkplug B at all."""
    parsed = parse_topic(topic)
    if parsed is None or parsed.kind not in BIRTHS:
        return (), ()
    decoded = decode_payload(payload, aliases={})
    asset = asset_path(parsed.group, parsed.node, parsed.device)
    prefix = "/".join(p for p in (parsed.group, parsed.node, parsed.device) if p is not None)
    signals = []
    for metric in decoded.metrics:
        if metric.name == BDSEQ_METRIC or metric.name.startswith(_CONTROL_PREFIXES):
            continue
        problem = None
        if metric.datatype not in NUMERIC:
            problem = f"a {metric.datatype.name} metric: the edge reads numeric metrics only"
        signals.append(
            Signal(asset, metric.name, metric.unit, f"{prefix}/{metric.name}",
                   datatype=metric.datatype.name, problem=problem)
        )  # fmt: skip
    notes = tuple(f"{topic}: {error}" for error in decoded.errors)
    return tuple(signals), notes


def _broker(mqtt_settings: MqttSettings) -> str:
    return f"mqtt{'s' if mqtt_settings.tls else ''}://{mqtt_settings.host}:{mqtt_settings.port}"


def discover_sparkplug(
    mqtt_settings: MqttSettings,
    seconds: float,
    *,
    listening: threading.Event | None = None,
    connect_timeout_s: float = 10.0,
) -> Discovery:
    """The metrics of every NBIRTH and DBIRTH published in the next `seconds`.

    Logs in as the primary host's user (which may read spBv1.0/#) under a client id of its
    own, so a running host is not disturbed. `listening` is set once the subscription is in
    place. Raises SourceError when the broker refuses the login or does not answer.
    """
    broker = _broker(mqtt_settings)
    messages: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    refused: list[str] = []
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"{mqtt_settings.host_app_id}-discover-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(
        mqtt_settings.host_username, mqtt_settings.host_password.get_secret_value()
    )
    mqtt_settings.use_tls(client)

    def on_connect(client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            refused.append(str(reason))
            return
        client.subscribe([(f"{NAMESPACE}/+/NBIRTH/+", 0), (f"{NAMESPACE}/+/DBIRTH/+/+", 0)])

    def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:
        subscribed.set()

    def on_message(client, userdata, message) -> None:
        messages.append((message.topic, message.payload))  # list.append is atomic

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(mqtt_settings.host, mqtt_settings.port, keepalive=10)
    except OSError as exc:
        raise SourceError(
            f"Cannot reach the MQTT broker at {broker}: {exc}.",
            hint="Start it (`plantlake up mosquitto`) or check settings mqtt.host/port.",
        ) from exc
    client.loop_start()
    try:
        deadline = time.monotonic() + connect_timeout_s
        while not subscribed.wait(0.05):
            if refused:
                raise SourceError(
                    f"The MQTT broker at {broker} refused {mqtt_settings.host_username}: "
                    f"{refused[0]}.",
                    hint="`plantlake up` writes the broker's password file from the settings.",
                )
            if time.monotonic() > deadline:
                raise SourceError(f"The MQTT broker at {broker} did not answer within "
                                  f"{connect_timeout_s:.0f}s.")  # fmt: skip
        discovered_ms = clock.now_ms()
        if listening is not None:
            listening.set()
        time.sleep(seconds)
    finally:
        client.disconnect()
        client.loop_stop()
    discovery = collect_births(broker, discovered_ms, list(messages))
    if not discovery.signals:
        raise SourceError(
            f"No Sparkplug births on {broker} in {seconds:g}s "
            f"({len(messages)} birth messages, no metrics).",
            hint="Nodes birth when they connect or when the primary host comes online: start the "
            "discovery, then restart the edge nodes or `plantlake ingest sparkplug`.",
        )
    return discovery


def collect_births(source: str, discovered_ms: int, messages: list[tuple[str, bytes]]) -> Discovery:
    """The discovery of a sequence of (topic, payload) messages, births in arrival order."""
    signals: list[Signal] = []
    notes: list[str] = []
    for topic, payload in messages:
        try:
            found, problems = birth_signals(topic, payload)
        except SourceError as exc:  # codec.PayloadError: not Sparkplug B at all
            notes.append(f"{topic}: {exc}")
            continue
        signals += found
        notes += problems
    return Discovery("sparkplug", source, discovered_ms, tuple(signals), tuple(notes))
