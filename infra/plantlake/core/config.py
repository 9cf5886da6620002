"""The one configuration model of plantlake: endpoints, credentials, lake paths and local-stack options.

Values come from, highest first: keyword arguments, `PLANTLAKE_*` environment variables (nested
with `__`, e.g. `PLANTLAKE_KAFKA__BOOTSTRAP_SERVERS`), the local secrets file that `plantlake up`
generates (`$PLANTLAKE_HOME/secrets.env`), a TOML config file (`--config`, `$PLANTLAKE_CONFIG` or
`./plantlake.toml`), then the defaults below, which describe the local loopback stack. Relative
paths in the TOML file are relative to it; credentials are refused there.
"""

from __future__ import annotations

import contextvars
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from plantlake.core.errors import ConfigError

ENV_PREFIX = "PLANTLAKE_"
_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("config", default=None)


def default_home() -> Path:
    """State of the local stack: service data, logs, pid files, generated secrets."""
    return Path(os.environ.get("PLANTLAKE_HOME", Path.home() / ".local/share/plantlake"))


def default_cache() -> Path:
    """Downloads and builds kept between clones: Maven repository, jars, the MinIO binary."""
    return Path(os.environ.get("PLANTLAKE_CACHE", Path.home() / ".cache/plantlake"))


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "plantlake"
    managed: bool = Field(True, description="Run a local broker with `plantlake up`.")
    controller_port: int = 9093
    heap: str = "512m"
    # TLS for a site's broker; off for the loopback one `plantlake up` runs.
    security_protocol: Literal["PLAINTEXT", "SSL"] = "PLAINTEXT"
    ssl_ca: Path | None = Field(None, description="PEM of the CA that signed the brokers.")
    ssl_certificate: Path | None = Field(
        None, description="PEM client certificate, when brokers ask for one (edge and hot path)."
    )
    ssl_key: Path | None = Field(None, description="PEM key of ssl_certificate.")

    def client_config(self) -> dict[str, str]:
        """librdkafka settings every plantlake Kafka client starts from (edge, hot path, admin)."""
        conf = {"bootstrap.servers": self.bootstrap_servers}
        if self.security_protocol == "SSL":
            conf["security.protocol"] = "SSL"
            files = {"ssl.ca.location": self.ssl_ca, "ssl.certificate.location":
                     self.ssl_certificate, "ssl.key.location": self.ssl_key}  # fmt: skip
            conf |= {key: str(path) for key, path in files.items() if path is not None}
        return conf

    def spark_options(self) -> dict[str, str]:
        """The same for Spark's Kafka source (Java client options, prefixed `kafka.`). The Java
        client reads the CA as a PEM trust store; client certificates are for the Python
        clients only (a Spark job that needs one gets it through spark-submit's own options)."""
        options = {"kafka.bootstrap.servers": self.bootstrap_servers}
        if self.security_protocol == "SSL":
            options["kafka.security.protocol"] = "SSL"
            if self.ssl_ca is not None:
                options |= {"kafka.ssl.truststore.type": "PEM",
                            "kafka.ssl.truststore.location": str(self.ssl_ca)}  # fmt: skip
        return options


class S3Settings(_Section):
    endpoint: str = "http://127.0.0.1:9000"
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: SecretStr = SecretStr("")
    managed: bool = Field(True, description="Run a local MinIO with `plantlake up`.")
    console_port: int = 9001

    @property
    def host_port(self) -> tuple[str, int]:
        url = urlparse(self.endpoint)
        return url.hostname or "127.0.0.1", url.port or (443 if url.scheme == "https" else 80)

    @property
    def secure(self) -> bool:
        return urlparse(self.endpoint).scheme == "https"


# A Sparkplug id or MQTT user name, as it goes into topics and Mosquitto's ACL: no topic
# separator or wildcard (which would widen a rule to other nodes' topics), no whitespace or
# control character (a newline would add an ACL line of the name's choosing).
MQTT_NAME_PATTERN = r"^[^/+#\s\x00-\x1f\x7f]+$"


class EdgeNode(_Section):
    """A Sparkplug B edge node allowed to publish under spBv1.0/<group_id>/.../<edge_node_id>."""

    group_id: str = Field(pattern=MQTT_NAME_PATTERN)
    edge_node_id: str = Field(pattern=MQTT_NAME_PATTERN)


class MqttSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 1883
    managed: bool = True
    # TLS for a site's broker; off for the loopback one `plantlake up` runs.
    tls: bool = Field(False, description="Connect with TLS (verifying the broker's certificate).")
    tls_ca: Path | None = Field(None, description="PEM of the broker's CA; default: the system's.")
    tls_certificate: Path | None = Field(None, description="PEM client certificate, if required.")
    tls_key: Path | None = Field(None, description="PEM key of tls_certificate.")

    def use_tls(self, client) -> None:
        """Turn on TLS on a paho client, when configured (before it connects)."""
        if self.tls:
            client.tls_set(
                ca_certs=str(self.tls_ca) if self.tls_ca else None,
                certfile=str(self.tls_certificate) if self.tls_certificate else None,
                keyfile=str(self.tls_key) if self.tls_key else None,
            )

    host_app_id: str = Field("plantlake-host", pattern=MQTT_NAME_PATTERN)
    host_username: str = Field("plantlake-host", pattern=MQTT_NAME_PATTERN)
    host_password: SecretStr = SecretStr("")
    edge_nodes: tuple[EdgeNode, ...] = (
        EdgeNode(group_id="plant1", edge_node_id="line1-gateway"),
        EdgeNode(group_id="plant1", edge_node_id="line2-gateway"),
    )
    # Edge nodes log in with their edge_node_id as user name and this password.
    edge_passwords: dict[str, SecretStr] = Field(default_factory=dict)
    host_session_expiry_s: int = Field(
        3600, ge=0,
        description="How long the broker keeps a killed host's session (its unacknowledged and "
        "queued messages) for the host's restart.",
    )  # fmt: skip
    max_packet_bytes: int = Field(
        1_048_576, ge=1024, le=268_435_455,
        description="The largest MQTT packet the managed broker accepts (a DBIRTH of thousands "
        "of metrics fits); a client that sends a bigger one is disconnected.",
    )  # fmt: skip


class MlflowSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 5000
    managed: bool = True
    artifact_bucket: str = "mlflow"
    tracking_uri: str = ""
    # The managed server runs MLflow's basic auth with this user as its admin; plantlake's
    # clients (training, promotion, scoring, notebooks) log in as it.
    username: str = Field("plantlake", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    password: SecretStr = SecretStr("")
    # Signs the auth app's sessions and CSRF tokens (server side only).
    server_secret_key: SecretStr = SecretStr("")
    # The managed server's own MinIO user, limited to `artifact_bucket` (`plantlake up` creates
    # it); left empty with an S3 plantlake does not manage, the lake's keys are used.
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")

    @property
    def uri(self) -> str:
        return self.tracking_uri or f"http://{self.host}:{self.port}"


class SparkSettings(_Section):
    master: str = Field(
        "local[2,4]",
        description="Master for jobs started outside spark-submit. local[N,F]: N cores, and a "
        "task tried F times before its job fails (plain local[N] tries once).",
    )
    shuffle_partitions: int = 4
    driver_memory: str = "2g"
    managed: bool = Field(True, description="Run a local standalone master and worker.")
    cluster_host: str = "127.0.0.1"
    cluster_port: int = 7077
    master_webui_port: int = 8080
    worker_webui_port: int = 8081
    worker_cores: int = 2
    worker_memory: str = "3g"

    @property
    def cluster_url(self) -> str:
        return f"spark://{self.cluster_host}:{self.cluster_port}"


class SimulatorSettings(_Section):
    """The simulated plant and its devices (`plantlake simulate`)."""

    seed: int = 7
    speed: float = Field(1.0, gt=0, description="Simulated seconds per wall-clock second.")
    opcua_port: int = 4840
    modbus_port: int = 5020
    # Dev profile: the OPC-UA server also accepts anonymous, unencrypted sessions.
    dev_profile: bool = False


class OpcUaSettings(_Section):
    """How the OPC-UA edge client reaches its server."""

    endpoint: str = "opc.tcp://127.0.0.1:4840/plantlake/"
    # Basic256Sha256 with SignAndEncrypt and a user login; "none" only against a dev profile.
    security: str = "Basic256Sha256_SignAndEncrypt"
    username: str = "plantlake-edge"
    password: SecretStr = SecretStr("")
    sampling_interval_ms: int = 500
    server_certificate: Path | None = Field(
        None,
        description="The server's certificate (DER or PEM) to trust; no credential goes to a "
        "server that presents another. Default: the one offered on the first connection, "
        "pinned under $PLANTLAKE_HOME/pki/opcua-trusted.",
    )
    max_backfill_minutes: float = Field(
        60.0, gt=0,
        description="How much source time the edge reads back from the server's history after "
        "a reconnect or a restart; an older gap is reported as a data_gap lifecycle event.",
    )  # fmt: skip


class ModbusSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 5020
    register_map: Path | None = Field(
        None,
        description="The register map YAML of the devices behind host:port (see "
        "infra/site/modbus-register-map.template.yaml). Without one, an edge started without "
        "--config polls the simulated plant's map, and one started with it refuses to run.",
    )


class EdgeSettings(_Section):
    """Edge processes: the store-and-forward buffer and the filter configuration."""

    buffer_dir: Path | None = Field(None, description="Default: $PLANTLAKE_HOME/edge-buffer.")
    forwarder: Literal["process", "thread"] = Field(
        "process",
        description="Run each edge process's forwarder as a child process (a core of its own) "
        "or as a thread of it.",
    )
    buffer_max_mb: float = Field(
        2048.0,
        gt=0,
        description="Cap on one edge process's buffer. Past it the oldest telemetry and edge "
        "features are shed (never lifecycle events or dead letters), and a lifecycle event says "
        "how many and from when.",
    )
    filters: Path | None = Field(None, description="Filter config YAML; default: the shipped one.")


class LakeSettings(_Section):
    root: str = Field("s3a://plantlake", description="s3a://bucket[/prefix] or file:///path.")
    # Streaming checkpoints write small files every batch; on S3A each is a copy plus a delete,
    # so they stay on local disk unless configured (Settings fills in the default).
    checkpoint_root: str | None = Field(
        None,
        description="Default: file://$PLANTLAKE_HOME/checkpoints/<scheme>/<lake.root's "
        "bucket and path>, so each lake has its own.",
    )

    @field_validator("root", "checkpoint_root")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme = urlparse(value).scheme
        if scheme not in ("s3a", "file"):
            raise ValueError(f"{value!r}: use an s3a:// or file:// URI")
        return value.rstrip("/")

    def table_path(self, layer: str, table: str) -> str:
        return f"{self.root}/{layer}/{table}"

    def checkpoint_path(self, job: str) -> str:
        if self.checkpoint_root is None:
            raise ConfigError(
                "lake.checkpoint_root is not set; load settings with load_settings() "
                "(it defaults to a folder of the lake's own under $PLANTLAKE_HOME/checkpoints) "
                "or set it."
            )
        return f"{self.checkpoint_root}/{job}"

    def buckets(self) -> set[str]:
        """S3 buckets the lake needs."""
        return {
            urlparse(uri).netloc
            for uri in (self.root, self.checkpoint_root)
            if uri is not None and urlparse(uri).scheme == "s3a"
        }


def delta_uri(path: str) -> str:
    """A lake path as delta-rs spells it (s3a:// is Hadoop's name for s3://)."""
    return "s3://" + path.removeprefix("s3a://") if path.startswith("s3a://") else path


def local_checkpoint_root(home: Path, lake_root: str) -> str:
    """Checkpoints on local disk, in a folder of their lake's own: two lakes (a test's scratch
    lake and the plant's, say) never share a job's checkpoint. s3a://plantlake/x ->
    file://$PLANTLAKE_HOME/checkpoints/s3a/plantlake/x."""
    url = urlparse(lake_root)
    where = "/".join(part for part in (url.netloc, *url.path.split("/")) if part)
    return f"file://{home.absolute()}/checkpoints/{url.scheme}/{where}"


class ModelSettings(_Section):
    """Predictive maintenance: feature grid, labels, the registered models and the alert policy."""

    failure_model: str = "plantlake-failure-predictor"
    anomaly_model: str = "plantlake-anomaly-detector"
    feature_step_minutes: int = Field(5, gt=0, description="Grid of gold.features per asset.")
    horizon_hours: float = Field(24.0, gt=0, description="Label: a failure within this horizon.")
    label_every_minutes: int = Field(60, gt=0, description="One label time per asset this often.")
    max_staleness_minutes: int = Field(30, gt=0, description="Oldest feature row a label may use.")
    split_gap_hours: float = Field(24.0, ge=0, description="Gap between train and validation.")
    validation_fraction: float = Field(0.3, gt=0, lt=1)
    alert_budget: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Share of asset-hours a model may flag (recall is measured at it).",
    )


class PipelineSettings(_Section):
    """The Spark side of the lake path: triggers, and how `plantlake pipeline up` runs it."""

    bronze_trigger: str = Field("5 seconds", description="processingTime of the bronze query.")
    restarts: int = Field(
        5, ge=0,
        description="A continuous `pipeline run` restarts a failed query (a broker or MinIO "
        "restart) this many times in a row, waiting 2, 4, 8... s (at most 60); a run that "
        "completed a batch resets the count. A failed `fail` rule is never retried.",
    )  # fmt: skip
    bronze_max_offsets: int = Field(
        500_000, gt=0, description="Largest bronze micro-batch (maxOffsetsPerTrigger)."
    )
    cold_trigger: str = Field(
        "30 seconds", description="processingTime of the cold path (silver + aggregates)."
    )
    silver_trigger: str = Field(
        "10 seconds", description="processingTime of a continuous `pipeline run silver`."
    )
    gold_trigger: str = Field(
        "10 seconds", description="processingTime of a continuous `pipeline run gold`."
    )
    gold_watermark_delay_minutes: float = Field(
        15.0,
        gt=0,
        description="How far behind a sensor's newest Good reading a gold window stays open "
        "(covers OPC UA's HistoryRead backfill after an outage); later readings go to "
        "gold.late_data.",
    )
    features_trigger: str = Field(
        "30 seconds",
        description="processingTime of a continuous `pipeline run features` (gold.features and "
        "streaming scoring).",
    )
    features_every_minutes: float = Field(
        5.0, gt=0, description="`pipeline up` runs gold.features (availableNow) this often."
    )
    spark_nice: int = Field(
        10, ge=0, le=19, description="Niceness of the Spark driver, so the hot path goes first."
    )


class HotPathSettings(_Section):
    """The hot path: Kafka to gold.twin_state through delta-rs, as the table's only writer."""

    group_id: str = Field("plantlake-hot-path", description="Kafka consumer group (scale-out).")
    member: str = Field(
        "1",
        description="This member's name in the group, unique per running hot path: a restarted "
        "member takes its partitions back at once (static membership), not after a timeout.",
    )
    flush_interval_ms: int = Field(
        500, ge=50, description="How often the twin is committed (then Kafka offsets)."
    )
    heartbeat_seconds: float = Field(
        10.0, gt=0, description="Commit at least this often while idle (liveness moves on)."
    )
    max_poll_records: int = Field(10_000, gt=0, description="Largest read from Kafka at a time.")
    reference_refresh_seconds: float = Field(
        60.0, gt=0, description="How often the registry and units are re-read."
    )
    vacuum_interval_seconds: float = Field(
        600.0, gt=0, description="How often replaced twin files are removed."
    )
    retention_hours: float = Field(
        1.0, gt=0, description="How long replaced twin files and log entries are kept."
    )


class WorkbenchUser(_Section):
    """A workbench login: a password hash (`plantlake app-password NAME`), never the password."""

    password_hash: str = Field(
        min_length=20, description="scrypt hash, as `plantlake app-password` prints."
    )
    role: Literal["viewer", "planner"] = Field(
        "viewer", description="viewer: reads every page; planner: also decides."
    )


class WorkbenchSettings(_Section):
    """The planners' web workbench (`plantlake app`)."""

    host: str = Field("127.0.0.1", description="Bind address; loopback unless behind a proxy.")
    port: int = 8050
    managed: bool = Field(True, description="Run the workbench with `plantlake up`.")
    users: dict[str, WorkbenchUser] = Field(
        default_factory=dict,
        description="Logins by user name. `plantlake up` adds a generated planner and viewer "
        "(their passwords in $PLANTLAKE_HOME/workbench-logins.json) when none is set.",
    )
    session_secret: SecretStr = SecretStr("")
    session_hours: float = Field(12.0, gt=0, description="How long a login lasts.")
    refresh_seconds: float = Field(
        10.0, gt=0, description="How often live pages poll (about the silver trigger)."
    )


class Settings(BaseSettings):
    """Everything plantlake needs to know about where things are."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    home: Path = Field(default_factory=default_home)
    cache: Path = Field(default_factory=default_cache)
    kafka: KafkaSettings = KafkaSettings()
    s3: S3Settings = S3Settings()
    mqtt: MqttSettings = MqttSettings()
    mlflow: MlflowSettings = MlflowSettings()
    spark: SparkSettings = SparkSettings()
    lake: LakeSettings = LakeSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    opcua: OpcUaSettings = OpcUaSettings()
    modbus: ModbusSettings = ModbusSettings()
    edge: EdgeSettings = EdgeSettings()
    models: ModelSettings = ModelSettings()
    hot_path: HotPathSettings = HotPathSettings()
    pipeline: PipelineSettings = PipelineSettings()
    workbench: WorkbenchSettings = WorkbenchSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings]
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(_SettingsFile(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def secrets_file(self) -> Path:
        return secrets_file(self.home)

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def pki(self) -> Path:
        """Certificates and keys of the OPC-UA server and clients."""
        return self.home / "pki"

    @property
    def edge_buffer(self) -> Path:
        return self.edge.buffer_dir or self.home / "edge-buffer"

    @model_validator(mode="before")
    @classmethod
    def _checkpoints_under_home(cls, data: Any) -> Any:
        """Fill in lake.checkpoint_root, which needs `home`, when no source set it."""
        if not isinstance(data, dict):
            return data
        lake = data.get("lake", {})
        home = Path(data.get("home") or default_home())
        if isinstance(lake, LakeSettings):
            if lake.checkpoint_root is None:
                root = local_checkpoint_root(home, lake.root)
                lake = lake.model_copy(update={"checkpoint_root": root})
        elif isinstance(lake, dict) and lake.get("checkpoint_root") is None:
            # Unvalidated here; a bad root is reported by LakeSettings, under lake.root.
            root = str(lake.get("root") or LakeSettings.model_fields["root"].default).rstrip("/")
            lake = {**lake, "checkpoint_root": local_checkpoint_root(home, root)}
        return {**data, "lake": lake}


class _SettingsFile(TomlConfigSettingsSource):
    """The TOML settings file, read as a site writes it: relative paths are relative to the file
    (a unit file or cron job runs from anywhere), and credentials are refused (they belong in the
    environment or the secrets file, which are kept 0600, not in a file copied between hosts)."""

    def _read_file(self, file_path: Path) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"The settings file {file_path} is not valid TOML: {exc}.") from exc
        return file_values(data, Settings, file=file_path)


def file_values(
    data: dict[str, Any], model: type[BaseModel], *, file: Path, where: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`data` from a settings file with its relative paths made relative to `file`; raises
    ConfigError for a credential. Unknown keys pass through for validation to report."""
    values = dict(data)
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            continue
        name = (*where, key)
        kinds = _types_in(field.annotation)
        if SecretStr in kinds:
            env = ENV_PREFIX + "__".join(name).upper()
            raise ConfigError(
                f"The settings file {file} sets {'.'.join(name)}, a credential.",
                hint=f"Remove it from the file and set {env} in the environment (a systemd "
                f"EnvironmentFile, mode 0600) or in $PLANTLAKE_HOME/secrets.env.",
            )
        section = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
        if section is not None and isinstance(value, dict):
            values[key] = file_values(value, section, file=file, where=name)
        elif Path in kinds and isinstance(value, str):
            path = Path(value).expanduser()
            values[key] = str(path if path.is_absolute() else file.parent.absolute() / path)
    return values


def _types_in(annotation: Any) -> set[Any]:
    """Every type an annotation names (Path | None -> {Path, NoneType}; dict[str, SecretStr]
    -> {dict, str, SecretStr})."""
    found = {get_origin(annotation) or annotation}
    for arg in get_args(annotation):
        found |= _types_in(arg)
    return found


def secrets_file(home: Path) -> Path:
    return home / "secrets.env"


def find_config_file(explicit: Path | None = None) -> Path | None:
    """The TOML file to read: the one named, else $PLANTLAKE_CONFIG, else ./plantlake.toml."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"Config file {explicit} does not exist.")
        return explicit
    from_env = os.environ.get("PLANTLAKE_CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"PLANTLAKE_CONFIG names {path}, which does not exist.")
        return path
    local = Path("plantlake.toml")
    return local if local.is_file() else None


def load_settings(config_file: Path | None = None, **overrides) -> Settings:
    """Load settings; a validation error becomes a ConfigError naming where the value came from."""
    path = find_config_file(config_file)
    token = _config_file.set(path)
    try:
        env_file = secrets_file(Path(overrides.get("home") or default_home()))
        return Settings(_env_file=env_file if env_file.is_file() else None, **overrides)
    except ValidationError as exc:
        where = f"{path} or " if path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"Invalid plantlake settings ({where}PLANTLAKE_* environment): {problems}."
        ) from exc
    finally:
        _config_file.reset(token)
