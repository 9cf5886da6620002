import pytest
from paho.mqtt.client import topic_matches_sub
from pydantic import ValidationError

from plantlake.core.config import EdgeNode, MqttSettings
from plantlake.services.mosquitto import mosquitto_acl, mosquitto_conf


def _rules(acl: str) -> dict[str, list[tuple[str, str]]]:
    """user -> [(access, pattern)] from the ACL text."""
    rules: dict[str, list[tuple[str, str]]] = {}
    user = None
    for line in acl.splitlines():
        parts = line.split()
        if parts[:1] == ["user"]:
            user = parts[1]
            rules[user] = []
        elif parts[:1] == ["topic"]:
            rules[user].append((parts[1], parts[2]))
    return rules


def _may(rules, user, access, topic) -> bool:
    return any(a in (access, "readwrite") and topic_matches_sub(p, topic) for a, p in rules[user])


MQTT = MqttSettings(
    edge_nodes=(
        EdgeNode(group_id="g1", edge_node_id="n1"),
        EdgeNode(group_id="g1", edge_node_id="n2"),
    )
)


def test_edge_node_writes_only_its_own_topics():
    rules = _rules(mosquitto_acl(MQTT))
    assert _may(rules, "n1", "write", "spBv1.0/g1/NBIRTH/n1")
    assert _may(rules, "n1", "write", "spBv1.0/g1/NDEATH/n1")
    assert _may(rules, "n1", "write", "spBv1.0/g1/DDATA/n1/press-01")
    assert not _may(rules, "n1", "write", "spBv1.0/g1/NDATA/n2")
    assert not _may(rules, "n1", "write", "spBv1.0/g2/NDATA/n1")
    assert not _may(rules, "n1", "write", "spBv1.0/g1/NCMD/n1")
    assert not _may(rules, "n1", "write", "spBv1.0/STATE/plantlake-host")


def test_edge_node_reads_its_commands_and_host_state_only():
    rules = _rules(mosquitto_acl(MQTT))
    assert _may(rules, "n1", "read", "spBv1.0/g1/NCMD/n1")
    assert _may(rules, "n1", "read", "spBv1.0/STATE/plantlake-host")
    assert not _may(rules, "n1", "read", "spBv1.0/g1/NDATA/n2")


def test_host_reads_everything_and_writes_state_and_commands():
    rules = _rules(mosquitto_acl(MQTT))
    assert _may(rules, "plantlake-host", "read", "spBv1.0/g1/DDATA/n2/pump")
    assert _may(rules, "plantlake-host", "write", "spBv1.0/STATE/plantlake-host")
    assert _may(rules, "plantlake-host", "write", "spBv1.0/g1/NCMD/n1")
    assert not _may(rules, "plantlake-host", "write", "spBv1.0/g1/NDATA/n1")


def test_broker_config_refuses_anonymous_and_persists(tmp_path):
    conf = mosquitto_conf(host="127.0.0.1", port=1883, data_dir=tmp_path, user="me")
    assert "allow_anonymous false" in conf
    assert "persistence true" in conf
    assert f"acl_file {tmp_path / 'acl'}" in conf
    assert "listener 1883 127.0.0.1" in conf
    assert "max_packet_size 1048576" in conf  # an oversized packet disconnects its client


@pytest.mark.parametrize("name", ["n1\ntopic readwrite #", "n+", "n#", "g/n", "n 1", "n\x00", ""])
def test_an_mqtt_name_that_could_widen_the_acl_is_refused_in_the_settings(name):
    # Written into the ACL as is, a newline adds a rule of the name's choosing, and + or #
    # turn the node's own topics into wildcards over every node's.
    with pytest.raises(ValidationError, match="edge_node_id"):
        EdgeNode(group_id="g1", edge_node_id=name)
    with pytest.raises(ValidationError, match="group_id"):
        EdgeNode(group_id=name, edge_node_id="n1")
    with pytest.raises(ValidationError, match="host_username"):
        MqttSettings(host_username=name)
    with pytest.raises(ValidationError, match="host_app_id"):
        MqttSettings(host_app_id=name)
