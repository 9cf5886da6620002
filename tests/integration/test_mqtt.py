"""Mosquitto: logins are required, and each edge node may publish only under its own topics."""

import queue
import uuid

import paho.mqtt.client as mqtt
import pytest

pytestmark = pytest.mark.integration


def _client(settings, username=None, password=None, *, protocol=mqtt.MQTTv5):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                         protocol=protocol)  # fmt: skip
    if username:
        client.username_pw_set(username, password)
    return client


def _connect(client, settings) -> mqtt.ReasonCode:
    result: queue.Queue = queue.Queue()
    client.on_connect = lambda c, u, f, reason, p: result.put(reason)
    client.connect(settings.mqtt.host, settings.mqtt.port, keepalive=10)
    client.loop_start()
    return result.get(timeout=10)


@pytest.fixture
def host(settings):
    client = _client(settings, settings.mqtt.host_username,
                     settings.mqtt.host_password.get_secret_value())  # fmt: skip
    received: queue.Queue = queue.Queue()
    client.on_message = lambda c, u, msg: received.put((msg.topic, msg.payload))
    assert not _connect(client, settings).is_failure
    subscribed: queue.Queue = queue.Queue()
    client.on_subscribe = lambda c, u, mid, codes, p: subscribed.put(codes)
    client.subscribe("spBv1.0/#", qos=1)
    assert not subscribed.get(timeout=10)[0].is_failure
    yield received
    client.loop_stop()
    client.disconnect()


def _edge(settings, node):
    client = _client(settings, node.edge_node_id,
                     settings.mqtt.edge_passwords[node.edge_node_id].get_secret_value())  # fmt: skip
    assert not _connect(client, settings).is_failure
    return client


def _publish_and_ack(client, topic, payload) -> mqtt.ReasonCode:
    acks: queue.Queue = queue.Queue()
    client.on_publish = lambda c, u, mid, reason, p: acks.put(reason)
    client.publish(topic, payload, qos=1)
    return acks.get(timeout=10)


def _drain_until(received, payload, timeout=5.0):
    try:
        while True:
            topic, body = received.get(timeout=timeout)
            if body == payload:
                return topic
    except queue.Empty:
        return None


def test_edge_node_publishes_under_its_own_topics_and_host_receives(settings, host):
    node = settings.mqtt.edge_nodes[0]
    edge = _edge(settings, node)
    payload = uuid.uuid4().bytes
    own = f"spBv1.0/{node.group_id}/DDATA/{node.edge_node_id}/press-01"
    assert not _publish_and_ack(edge, own, payload).is_failure
    assert _drain_until(host, payload) == own
    edge.loop_stop()
    edge.disconnect()


def test_publishing_outside_the_acl_is_refused_and_not_delivered(settings, host):
    node, other = settings.mqtt.edge_nodes[0], settings.mqtt.edge_nodes[1]
    edge = _edge(settings, node)
    payload = uuid.uuid4().bytes
    foreign = f"spBv1.0/{other.group_id}/NDATA/{other.edge_node_id}"
    reason = _publish_and_ack(edge, foreign, payload)
    assert reason.is_failure and reason.getName() == "Not authorized"
    assert _drain_until(host, payload, timeout=2.0) is None
    edge.loop_stop()
    edge.disconnect()


def test_connecting_without_or_with_wrong_credentials_is_refused(settings):
    anonymous = _client(settings)
    reason = _connect(anonymous, settings)
    anonymous.loop_stop()
    assert reason.is_failure
    wrong = _client(settings, settings.mqtt.host_username, "not-the-password")
    reason = _connect(wrong, settings)
    wrong.loop_stop()
    assert reason.is_failure and reason.getName() in ("Bad user name or password", "Not authorized")


def test_broker_passwords_are_hashed_without_passing_through_a_command_line(
    settings, tmp_path, monkeypatch
):
    import subprocess

    from plantlake.services.mosquitto import MosquittoService

    calls = []
    real_run = subprocess.run

    def recording_run(argv, *args, **kwargs):
        calls.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)
    local = settings.model_copy(update={"home": tmp_path})
    MosquittoService(local).prepare(lambda _: None)
    passwords = [settings.mqtt.host_password.get_secret_value()]
    passwords += [p.get_secret_value() for p in settings.mqtt.edge_passwords.values()]
    assert calls and not any(p in arg for argv in calls for arg in argv for p in passwords)
    passwd = MosquittoService(local).data_dir / "passwd"
    lines = passwd.read_text().splitlines()
    assert {line.split(":")[0] for line in lines} == {
        settings.mqtt.host_username, *settings.mqtt.edge_passwords
    }  # fmt: skip
    assert all(line.split(":", 1)[1].startswith("$7$") for line in lines)  # PBKDF2-SHA512
    assert not any(p in passwd.read_text() for p in passwords)
    assert passwd.stat().st_mode & 0o777 == 0o600
