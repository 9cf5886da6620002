from plantlake.core.topics import TOPICS, topic


def test_topic_keys_are_unique_and_prefixed():
    names = [t.name("plantlake") for t in TOPICS]
    assert len(set(names)) == len(names)
    assert topic("telemetry").name("site") == "site.telemetry"


def test_every_data_class_has_a_topic():
    assert {t.key for t in TOPICS} >= {
        "telemetry",
        "edge_features",
        "asset_state",
        "alarms",
        "lifecycle",
        "dead_letter",
    }


def test_state_topics_are_compacted_and_streams_are_not():
    assert topic("asset_state").klass.config()["cleanup.policy"] == "compact"
    assert topic("telemetry").klass.config()["cleanup.policy"] == "delete"
    assert int(topic("dead_letter").klass.config()["retention.ms"]) >= 30 * 24 * 3600 * 1000
