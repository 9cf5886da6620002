import json
import stat

import pytest
from pydantic import ValidationError

from plantlake.app.local_secrets import (
    ensure_local_secrets,
    generate_local_secrets,
    workbench_logins_file,
)
from plantlake.core.config import LakeSettings, load_settings
from plantlake.core.errors import ConfigError
from plantlake.workbench.auth import authenticate, hash_password


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANTLAKE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PLANTLAKE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    for key in list(__import__("os").environ):
        if key.startswith("PLANTLAKE_") and key != "PLANTLAKE_HOME":
            monkeypatch.delenv(key)
    return tmp_path / "home"


def test_defaults_describe_the_local_stack(home):
    settings = load_settings()
    assert settings.home == home
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.lake.root == "s3a://plantlake"
    assert settings.lake.table_path("bronze", "telemetry") == "s3a://plantlake/bronze/telemetry"
    assert settings.s3.host_port == ("127.0.0.1", 9000)


def test_environment_overrides_nested_values(home, monkeypatch):
    monkeypatch.setenv("PLANTLAKE_KAFKA__BOOTSTRAP_SERVERS", "broker:19092")
    monkeypatch.setenv("PLANTLAKE_LAKE__ROOT", "file:///tmp/lake/")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "broker:19092"
    assert settings.lake.root == "file:///tmp/lake"


def test_toml_file_is_read_and_env_wins_over_it(home, tmp_path, monkeypatch):
    config = tmp_path / "site.toml"
    config.write_text('[kafka]\nbootstrap_servers = "file-broker:9092"\ntopic_prefix = "site"\n')
    monkeypatch.setenv("PLANTLAKE_KAFKA__TOPIC_PREFIX", "env")
    settings = load_settings(config)
    assert settings.kafka.bootstrap_servers == "file-broker:9092"
    assert settings.kafka.topic_prefix == "env"


def test_unknown_key_is_a_config_error_naming_the_file(home, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[kafka]\nbootstrap = 'oops'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.code == "config"
    assert str(config) in str(info.value)
    assert "kafka.bootstrap" in str(info.value)


def test_missing_config_file_is_reported(home, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_streaming_checkpoints_default_to_local_disk_under_home(home, tmp_path, monkeypatch):
    settings = load_settings()
    assert (
        settings.lake.checkpoint_path("bronze") == f"file://{home}/checkpoints/s3a/plantlake/bronze"
    )
    assert settings.lake.buckets() == {"plantlake"}
    (tmp_path / "plantlake.toml").write_text('[lake]\ncheckpoint_root = "s3a://lake/_chk"\n')
    assert load_settings().lake.checkpoint_root == "s3a://lake/_chk"
    monkeypatch.setenv("PLANTLAKE_LAKE__CHECKPOINT_ROOT", "file:///var/chk/")
    assert load_settings().lake.checkpoint_root == "file:///var/chk"
    # A lake section given in code without checkpoints gets the default ones.
    other = load_settings(lake=LakeSettings(root="file:///l"))
    assert other.lake.checkpoint_root == f"file://{home}/checkpoints/file/l"


def test_each_lake_has_checkpoints_of_its_own(home, monkeypatch):
    """A job run against a second lake must not resume the first lake's checkpoint (it would
    skip or re-land that lake's offsets)."""
    monkeypatch.setenv("PLANTLAKE_LAKE__ROOT", "s3a://plantlake/site-b")
    site_b = load_settings().lake.checkpoint_path("bronze")
    monkeypatch.setenv("PLANTLAKE_LAKE__ROOT", "file:///data/lake")
    local = load_settings().lake.checkpoint_path("bronze")
    monkeypatch.delenv("PLANTLAKE_LAKE__ROOT")
    plant = load_settings().lake.checkpoint_path("bronze")
    assert len({site_b, local, plant}) == 3
    assert site_b == f"file://{home}/checkpoints/s3a/plantlake/site-b/bronze"
    assert local == f"file://{home}/checkpoints/file/data/lake/bronze"


def test_lake_root_must_be_s3a_or_file():
    with pytest.raises(ValueError, match="s3a:// or file://"):
        LakeSettings(root="hdfs://nn/lake")
    assert LakeSettings(root="s3a://a/x", checkpoint_root="file:///c").buckets() == {"a"}


def test_settings_are_frozen(home):
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.kafka.bootstrap_servers = "x"  # type: ignore[misc]


def test_local_secrets_are_generated_once_and_private(home):
    settings = ensure_local_secrets(load_settings())
    assert settings.s3.access_key.startswith("plantlake-")
    assert len(settings.s3.secret_key.get_secret_value()) >= 24
    assert set(settings.mqtt.edge_passwords) == {n.edge_node_id for n in settings.mqtt.edge_nodes}
    mode = stat.S_IMODE(settings.secrets_file.stat().st_mode)
    assert mode == 0o600
    again = ensure_local_secrets(load_settings())
    assert again.s3.secret_key == settings.s3.secret_key
    assert generate_local_secrets(again) == {}


def test_demo_workbench_logins_round_trip_through_the_secrets_file(home):
    settings = ensure_local_secrets(load_settings())
    users = settings.workbench.users
    assert {name: user.role for name, user in users.items()} == {
        "planner": "planner",
        "viewer": "viewer",
    }
    assert len(settings.workbench.session_secret.get_secret_value()) >= 32
    logins_file = workbench_logins_file(home)
    assert stat.S_IMODE(logins_file.stat().st_mode) == 0o600
    passwords = json.loads(logins_file.read_text())
    assert set(passwords) == {"planner", "viewer"}
    # What load_settings() read back from secrets.env is the hash of the password on file.
    assert authenticate(users, "planner", passwords["planner"]).can_decide
    assert not authenticate(users, "viewer", passwords["viewer"]).can_decide
    assert authenticate(users, "viewer", passwords["planner"]) is None
    # Generated once: a second run keeps the logins and their passwords.
    again = ensure_local_secrets(load_settings())
    assert again.workbench.users == users
    assert json.loads(logins_file.read_text()) == passwords


def test_configured_workbench_users_get_no_demo_logins(home, monkeypatch):
    mine = {"ann": {"password_hash": hash_password("ann's password"), "role": "planner"}}
    monkeypatch.setenv("PLANTLAKE_WORKBENCH__USERS", json.dumps(mine))
    monkeypatch.setenv("PLANTLAKE_WORKBENCH__SESSION_SECRET", "my-session-secret")
    settings = ensure_local_secrets(load_settings())
    assert list(settings.workbench.users) == ["ann"]
    assert settings.workbench.session_secret.get_secret_value() == "my-session-secret"
    assert "PLANTLAKE_WORKBENCH" not in settings.secrets_file.read_text()
    assert not workbench_logins_file(home).exists()


def test_user_credentials_are_not_replaced(home, monkeypatch):
    monkeypatch.setenv("PLANTLAKE_S3__ACCESS_KEY", "mine")
    monkeypatch.setenv("PLANTLAKE_S3__SECRET_KEY", "my-secret-key")
    values = generate_local_secrets(load_settings())
    assert "PLANTLAKE_S3__ACCESS_KEY" not in values
    assert "PLANTLAKE_S3__SECRET_KEY" not in values
    assert "PLANTLAKE_MQTT__HOST_PASSWORD" in values


def test_kafka_tls_reaches_every_client_and_is_off_by_default(tmp_path):
    from plantlake.core.config import KafkaSettings

    plain = KafkaSettings()
    assert plain.client_config() == {"bootstrap.servers": "127.0.0.1:9092"}
    assert plain.spark_options() == {"kafka.bootstrap.servers": "127.0.0.1:9092"}
    site = KafkaSettings(bootstrap_servers="kafka.site:9093", security_protocol="SSL",
                         ssl_ca=tmp_path / "ca.pem", ssl_certificate=tmp_path / "c.pem",
                         ssl_key=tmp_path / "c.key")  # fmt: skip
    assert site.client_config() == {
        "bootstrap.servers": "kafka.site:9093", "security.protocol": "SSL",
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.certificate.location": str(tmp_path / "c.pem"),
        "ssl.key.location": str(tmp_path / "c.key"),
    }  # fmt: skip
    assert site.spark_options() == {
        "kafka.bootstrap.servers": "kafka.site:9093", "kafka.security.protocol": "SSL",
        "kafka.ssl.truststore.type": "PEM", "kafka.ssl.truststore.location": str(tmp_path / "ca.pem"),
    }  # fmt: skip
    # Every producer and consumer plantlake makes starts from client_config.
    from plantlake.adapters.kafka import producer_config

    assert producer_config(site)["security.protocol"] == "SSL"
