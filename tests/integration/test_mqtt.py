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


def _tls_files(folder, *, name: str):
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM files in `folder`)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def pem_key(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())  # fmt: skip

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))  # fmt: skip
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
              .issuer_name(ca_name).public_key(key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName(
                  [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
              .sign(ca_key, hashes.SHA256()))  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    files = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(pem_key(key))
    return files


def test_the_host_connects_to_a_tls_broker_and_checks_its_certificate(settings, tmp_path):
    """Issue 13.9: `mqtt.tls` for a site whose broker speaks TLS: the host verifies the broker
    against `mqtt.tls_ca`, and refuses a broker its CA did not sign."""
    import getpass
    import shutil
    import subprocess
    import threading

    from plantlake.ingest.edge import MemorySink
    from plantlake.ingest.sparkplug.host_client import HostClient
    from tests.integration.test_edge_forwarding import _free_port

    good, other = (
        _tls_files(tmp_path / "good", name="site"),
        _tls_files(tmp_path / "other", name="x"),
    )
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    # `user`: as root, mosquitto would drop to a user who cannot read the test's folder.
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
                    f"certfile {good['cert']}\nkeyfile {good['key']}\n")  # fmt: skip
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with (tmp_path / "broker.log").open("w") as log:
        broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=log, stderr=log)
    try:
        for ca, expect_online in ((good["ca"], True), (other["ca"], False)):
            site = settings.mqtt.model_copy(update={"port": port, "tls": True, "tls_ca": ca})
            host = HostClient(site, MemorySink(), client_id=f"tls-{uuid.uuid4().hex[:6]}")
            stop = threading.Event()
            thread = threading.Thread(target=host.run, args=(stop,), daemon=True)
            thread.start()
            try:
                assert host.online.wait(10 if expect_online else 4) is expect_online, ca
            finally:
                stop.set()
                thread.join(10)
    finally:
        broker.terminate()
        broker.wait(10)
