"""Scoring end to end: a registered champion scores gold.features in batch and from the streaming
hook, into gold.predictions once per key, one open work order per asset and mode, an alarm on
Kafka, and a repair in silver.maintenance_events that closes the order on the next run."""

import contextlib
import json
import time
import uuid

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Consumer
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from rich.console import Console

from plantlake.core.contracts import (
    GOLD_FEATURES,
    GOLD_PREDICTIONS,
    GOLD_WORK_ORDERS,
    SILVER_MAINTENANCE_EVENTS,
)
from plantlake.core.topics import topic
from plantlake.pipelines.jobs.gold_features import FEATURE_SCHEMA
from plantlake.pipelines.transforms.features import FEATURE_COLUMNS, FEATURE_VERSION, OUTPUT_COLUMNS
from tests.lake_contract import assert_tables_match_contract

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

STEP = 5 * 60_000
T0 = 1_780_000_000_000 // STEP * STEP
PUMP, MOTOR, PRESS = "plant1/line1/pump-01", "plant1/line1/motor-01", "plant1/line2/press-01"
CLASSES = {PUMP: "pump", MOTOR: "motor", PRESS: "press"}
THRESHOLD = 0.5


def feature_rows(asset: str, steps: range, *, wearing: set[int] = frozenset()) -> pd.DataFrame:
    """OUTPUT_COLUMNS rows: calm signals, and bearing wear (high vibration) at `wearing` steps."""
    rows = []
    for i in steps:
        values = {c: 1.0 for c in FEATURE_COLUMNS}
        vib = 9.0 if i in wearing else 2.0 + 0.01 * i
        values.update(vibration_rms_mean_15m=vib, vibration_rms_mean_1h=vib,
                      vibration_rms_max_1h=vib + 1, temperature_mean_1h=60.0 + (i in wearing) * 25,
                      vibration_rms_trend_24h=0.4 if i in wearing else 0.0)  # fmt: skip
        t = T0 + i * STEP
        rows.append({"asset": asset, "asset_class": CLASSES[asset], "feature_time_ms": t,
                     "knowable_at_ms": t + 1000, "readings": 40,
                     "feature_version": FEATURE_VERSION, **values})  # fmt: skip
    return pd.DataFrame(rows)[list(OUTPUT_COLUMNS)]


def as_gold(spark, frame: pd.DataFrame):
    """Feature rows with the columns gold.features has (as the feature job writes them)."""
    return spark.createDataFrame(frame, FEATURE_SCHEMA).select(
        "asset", "asset_class",
        F.timestamp_millis("feature_time_ms").alias("feature_time"), "feature_time_ms",
        F.timestamp_millis("knowable_at_ms").alias("knowable_at"), "knowable_at_ms",
        "readings", "feature_version", *FEATURE_COLUMNS,
        F.current_timestamp().alias("computed_at"),
    )  # fmt: skip


def register_champion(settings, name: str) -> str:
    """A tiny failure model trained on synthetic rows, registered with the promotion's tags and
    the alias `champion`; returns its version."""
    import mlflow
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient
    from sklearn.ensemble import HistGradientBoostingClassifier

    from plantlake.models.pyfunc import RiskScoreModel

    rng = np.random.default_rng(5)
    x = pd.DataFrame(rng.uniform(0, 3, size=(400, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    x["vibration_rms_mean_1h"] = rng.uniform(1, 12, size=400)
    y = (x["vibration_rms_mean_1h"] > 6).astype(int)
    estimator = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    model = RiskScoreModel(estimator, kind="failure", threshold=THRESHOLD)
    mlflow.set_tracking_uri(settings.mlflow.uri)
    mlflow.set_experiment("plantlake-test-scoring")
    example = x.head(5)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=model, input_example=example,
            signature=infer_signature(example, model.scores(example)), registered_model_name=name,
        )  # fmt: skip
    version = str(info.registered_model_version)
    client = MlflowClient()
    # What `plantlake models promote` sets; scoring loads no champion without it.
    tags = {"kind": "failure", "alert_threshold": repr(THRESHOLD), "horizon_hours": "24.0",
            "promotion.decision": "promoted"}  # fmt: skip
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return version


def consume_all(settings, name: str, *, settle: float = 5.0, timeout: float = 60.0) -> list:
    """Every message on a topic: polls until `settle` seconds pass with nothing new."""
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                         "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([name])
    messages, quiet_since, deadline = [], time.monotonic(), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and time.monotonic() - quiet_since < settle:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            messages.append(msg)
            quiet_since = time.monotonic()
    finally:
        consumer.close()
    return messages


def test_champion_scores_batch_and_stream_into_predictions_work_orders_and_alarms(
    isolated_kafka, spark
):
    from mlflow.tracking import MlflowClient

    from plantlake.models.jobs.champions import champion
    from plantlake.models.jobs.scoring import run_batch_scoring
    from plantlake.models.jobs.streaming_scorer import streaming_scorer

    run = uuid.uuid4().hex[:8]
    settings = isolated_kafka.model_copy(
        update={"models": isolated_kafka.models.model_copy(update={
            "failure_model": f"test-failure-{run}", "anomaly_model": f"test-anomaly-{run}"})}
    )  # fmt: skip
    lake, name = settings.lake, settings.models.failure_model
    console = Console(record=True, width=160)
    client = MlflowClient(tracking_uri=settings.mlflow.uri)
    # Pump bearing wear at steps 8..11: four alerting feature times of one asset and mode.
    history = pd.concat([feature_rows(PUMP, range(12), wearing={8, 9, 10, 11}),
                         feature_rows(MOTOR, range(12)), feature_rows(PRESS, range(12))])  # fmt: skip
    as_gold(spark, history).write.format("delta").save(GOLD_FEATURES.path(lake))
    hook = streaming_scorer(settings)
    try:
        version = register_champion(settings, name)
        # Registered but not yet champion, and an anomaly model that does not exist: no-op.
        assert champion(settings, name) is None
        assert champion(settings, settings.models.anomaly_model) is None
        hook(as_gold(spark, history), 0)
        assert not DeltaTable.isDeltaTable(spark, GOLD_PREDICTIONS.path(lake))

        client.set_registered_model_alias(name, "champion", version)
        found = champion(settings, name)
        assert found.uri == f"models:/{name}/{version}" and found.tags["kind"] == "failure"

        first = run_batch_scoring(spark, settings, console=console)
        predictions = spark.read.format("delta").load(GOLD_PREDICTIONS.path(lake)).toPandas()
        assert len(predictions) == 36 and first.scored == {f"{name} v{version}": 36}
        assert (predictions["alert"] == (predictions["score"] >= THRESHOLD)).all()
        alerting = predictions[predictions["alert"]]
        assert set(alerting["asset"]) == {PUMP}
        assert sorted(alerting["feature_time_ms"]) == [T0 + i * STEP for i in (8, 9, 10, 11)]
        assert set(predictions["scoring_mode"]) == {"batch"}
        assert set(predictions["model_version"]) == {version}

        orders = spark.read.format("delta").load(GOLD_WORK_ORDERS.path(lake)).toPandas()
        assert len(orders) == 1
        order = orders.iloc[0]
        assert (order["asset"], order["failure_mode"]) == (PUMP, "failure")
        assert order["status"] == "open"
        assert order["opened_feature_time_ms"] == T0 + 8 * STEP and order["alert_count"] == 4
        assert pd.notna(order["alerted_at"])
        evidence = json.loads(order["evidence"])
        assert evidence["model_name"] == name and evidence["model_version"] == version
        latest = alerting.set_index("feature_time_ms")["score"][T0 + 11 * STEP]
        assert evidence["score"] == pytest.approx(latest) and evidence["threshold"] == THRESHOLD
        assert evidence["features"]["vibration_rms_mean_1h"] == 9.0
        assert evidence["trends_24h"]["vibration_rms_trend_24h"] == 0.4
        assert_tables_match_contract(spark, lake, ("gold.predictions", "gold.work_orders"))

        # Re-running scores nothing and writes nothing new.
        again = run_batch_scoring(spark, settings, console=console)
        assert again.scored == {} and (again.opened, again.announced) == (0, 0)
        assert spark.read.format("delta").load(GOLD_PREDICTIONS.path(lake)).count() == 36

        # The stream: two more wearing feature times of the pump update the open order.
        fresh = as_gold(spark, feature_rows(PUMP, range(12, 14), wearing={12, 13}))
        for _ in range(2):  # the second call is a retried micro-batch
            hook(fresh, 7)
        predictions = spark.read.format("delta").load(GOLD_PREDICTIONS.path(lake))
        assert predictions.count() == 38
        assert predictions.where("scoring_mode = 'stream'").count() == 2
        orders = spark.read.format("delta").load(GOLD_WORK_ORDERS.path(lake)).toPandas()
        assert len(orders) == 1 and orders.iloc[0]["status"] == "open"
        assert orders.iloc[0]["latest_feature_time_ms"] == T0 + 13 * STEP
        assert orders.iloc[0]["alert_count"] == 6

        alarms = consume_all(settings, topic("alarms").name(settings.kafka.topic_prefix))
        assert len(alarms) == 1
        assert alarms[0].key().decode() == PUMP
        alarm = json.loads(alarms[0].value())
        assert alarm["work_order_id"] == order["work_order_id"]
        assert alarm["evidence"]["model_version"] == version

        # A repair after the opening closes the order on the next run, with nothing to score.
        repair_ms = T0 + 15 * STEP
        spark.createDataFrame(
            [(PUMP, "repair", "bearing_wear", repair_ms)],
            "asset string, event string, failure_mode string, event_time_ms long",
        ).withColumn("event_time", F.timestamp_millis("event_time_ms")).write.format("delta").save(
            SILVER_MAINTENANCE_EVENTS.path(lake)
        )
        closing = run_batch_scoring(spark, settings, console=console)
        assert closing.closed == 1 and closing.scored == {}
        [closed] = spark.read.format("delta").load(GOLD_WORK_ORDERS.path(lake)).collect()
        assert closed.status == "closed" and closed.closed_event_time_ms == repair_ms
        assert "repair" in closed.closed_reason and closed.closed_at is not None
        assert f"{name} v{version} (failure): 36 feature row(s) to score" in console.export_text()
    finally:
        if client.search_registered_models(filter_string=f"name = '{name}'"):
            client.delete_registered_model(name)


class Outage:
    """A TCP relay in front of a real service that can be cut (connections refused) and
    restored on the same port: the service seen through it goes down and comes back."""

    def __init__(self, host: str, port: int):
        import socket
        import threading

        self.target = (host, port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._socket, self._threading = socket, threading
        self._server = None
        self.restore()

    def restore(self) -> None:
        server = self._socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        self._server = server
        self._threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        self._server.close()

    def _accept(self, server) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # cut
            upstream = self._socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(2)


def test_scoring_skips_while_the_registry_is_down_and_catches_up_after(
    isolated_kafka, spark, capsys
):
    """Issue 13.7: the features job's scoring hook never fails the job because MLflow is
    unreachable; the batches it skipped are scored once the registry answers again."""
    from mlflow.tracking import MlflowClient

    from plantlake.models.jobs.streaming_scorer import streaming_scorer

    run = uuid.uuid4().hex[:8]
    outage = Outage(isolated_kafka.mlflow.host, isolated_kafka.mlflow.port)
    through_relay = isolated_kafka.mlflow.model_copy(
        update={"tracking_uri": f"http://127.0.0.1:{outage.port}"}
    )
    settings = isolated_kafka.model_copy(update={
        "mlflow": through_relay,
        "models": isolated_kafka.models.model_copy(update={
            "failure_model": f"test-failure-{run}", "anomaly_model": f"test-anomaly-{run}"}),
    })  # fmt: skip
    lake, name = settings.lake, settings.models.failure_model
    client = MlflowClient(tracking_uri=isolated_kafka.mlflow.uri)
    try:
        version = register_champion(isolated_kafka, name)
        client.set_registered_model_alias(name, "champion", version)
        hook = streaming_scorer(settings)
        early = as_gold(spark, feature_rows(PUMP, range(4)))
        early.write.format("delta").save(GOLD_FEATURES.path(lake))
        outage.cut()
        hook(early, 0)  # skipped, not raised
        assert "batch 0 skipped" in capsys.readouterr().out
        assert not DeltaTable.isDeltaTable(spark, GOLD_PREDICTIONS.path(lake))

        outage.restore()
        later = as_gold(spark, feature_rows(PUMP, range(4, 6)))
        later.write.format("delta").mode("append").save(GOLD_FEATURES.path(lake))
        hook(later, 1)
        assert "caught up" in capsys.readouterr().out
        scored = spark.read.format("delta").load(GOLD_PREDICTIONS.path(lake))
        # The skipped batch's four rows and this batch's two, each once.
        assert sorted(r.feature_time_ms for r in scored.collect()) == [
            T0 + i * STEP for i in range(6)
        ]  # fmt: skip
    finally:
        outage.cut()
        if client.search_registered_models(filter_string=f"name = '{name}'"):
            client.delete_registered_model(name)


def test_a_champion_promotion_did_not_pass_is_not_loaded(isolated_kafka, spark, capsys):
    """Issue 13.9: models are pickles, so scoring refuses a version that `promote` did not tag,
    whoever moved the alias onto it; the features job's hook skips rather than fails."""
    from mlflow.tracking import MlflowClient

    from plantlake.models.jobs.champions import UntrustedChampion, champion
    from plantlake.models.jobs.streaming_scorer import streaming_scorer

    run = uuid.uuid4().hex[:8]
    settings = isolated_kafka.model_copy(
        update={"models": isolated_kafka.models.model_copy(update={
            "failure_model": f"test-failure-{run}", "anomaly_model": f"test-anomaly-{run}"})}
    )  # fmt: skip
    name = settings.models.failure_model
    client = MlflowClient(tracking_uri=settings.mlflow.uri)
    try:
        version = register_champion(settings, name)
        client.delete_model_version_tag(name, version, "promotion.decision")
        client.set_registered_model_alias(name, "champion", version)
        with pytest.raises(UntrustedChampion, match="did not promote") as refused:
            champion(settings, name)
        assert refused.value.code == "untrusted-champion"
        rows = as_gold(spark, feature_rows(PUMP, range(2)))
        streaming_scorer(settings)(rows, 0)  # skipped, not raised
        assert "batch 0 skipped" in capsys.readouterr().out
        assert not DeltaTable.isDeltaTable(spark, GOLD_PREDICTIONS.path(settings.lake))
    finally:
        if client.search_registered_models(filter_string=f"name = '{name}'"):
            client.delete_registered_model(name)


def test_an_alarm_sent_just_before_a_crash_is_not_sent_again(isolated_kafka, spark, monkeypatch):
    """Issue 13 (stress): the job dies after Kafka acknowledged an alarm but before the order's
    `alerted_at` was stamped; the restarted job finds the order unannounced and must not send
    the same work order's alarm a second time."""
    from plantlake.models.jobs import alarms, work_order_store
    from plantlake.models.logic.work_orders import OPEN, WorkOrder

    settings = isolated_kafka
    order = WorkOrder(
        work_order_id="wo-crash-1", asset=PUMP, asset_class="pump", failure_mode="failure",
        status=OPEN, opened_feature_time_ms=T0, opened_score=0.9, latest_feature_time_ms=T0,
        latest_score=0.9, alert_count=1, model_name="m", model_version="1", model_kind="failure",
        threshold=THRESHOLD, horizon_hours=24.0, evidence="{}",
    )  # fmt: skip
    path = GOLD_WORK_ORDERS.path(settings.lake)
    work_order_store.write_orders(spark, [order], path)

    class Crash(Exception):
        pass

    def crash_before_the_stamp(*_args, **_kwargs):
        raise Crash

    with monkeypatch.context() as patched:
        patched.setattr(alarms.DeltaTable, "forPath", crash_before_the_stamp)
        with pytest.raises(Crash):
            alarms.announce(spark, settings, [order])
    [unstamped] = work_order_store.read_orders(spark, path, assets=[PUMP])
    assert unstamped.alerted_at_ms is None  # so the restarted job plans to announce it again

    assert alarms.announce(spark, settings, [unstamped]) == 0
    [stamped] = work_order_store.read_orders(spark, path, assets=[PUMP])
    assert stamped.alerted_at_ms is not None
    alarms = consume_all(settings, topic("alarms").name(settings.kafka.topic_prefix), settle=3)
    assert [json.loads(m.value())["work_order_id"] for m in alarms] == ["wo-crash-1"]


def test_the_features_job_scores_only_when_asked(isolated_kafka, spark):
    """Issue 9: `pipeline run features` computes features; serving ML (predictions, work orders,
    alarms) is composed in by the app layer (`--score`, `pipeline up`), never a silent default."""
    import datetime as dt

    from mlflow.tracking import MlflowClient

    from plantlake.core.contracts import SILVER_TELEMETRY
    from plantlake.pipelines.jobs import gold_features
    from tests.integration.test_restart import SILVER_SCHEMA, silver_row

    settings = isolated_kafka
    name = f"test-unasked-{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(update={"models": settings.models.model_copy(
        update={"failure_model": name})})  # fmt: skip
    client = MlflowClient(tracking_uri=settings.mlflow.uri)
    try:
        version = register_champion(settings, name)
        client.set_registered_model_alias(name, "champion", version)
        written = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        rows = [silver_row(PUMP, "vibration", "vibration", "mm/s", 9.0, T0 + i * 60_000,
                           quality="Good", offset=i, written_ms=written) for i in range(30)]  # fmt: skip
        spark.createDataFrame(rows, SILVER_SCHEMA).write.format("delta").save(
            SILVER_TELEMETRY.path(settings.lake)
        )
        query = gold_features.run(spark, settings, once=True)
        query.awaitTermination()
        assert spark.read.format("delta").load(GOLD_FEATURES.path(settings.lake)).count() > 0
        assert not DeltaTable.isDeltaTable(spark, GOLD_PREDICTIONS.path(settings.lake))
    finally:
        if client.search_registered_models(filter_string=f"name = '{name}'"):
            client.delete_registered_model(name)


def test_reading_back_alarms_skips_records_that_are_not_alarms(isolated_kafka):
    """The alarms topic is shared: a record some other producer put there (not JSON, or JSON
    that is no alarm) must not stop work orders from being announced."""
    from plantlake.adapters.kafka import produce, produce_raw
    from plantlake.models.jobs.alarms import announced_work_orders

    settings = isolated_kafka
    name = topic("alarms").name(settings.kafka.topic_prefix)
    produce_raw(settings.kafka, name, b"x", b"\xff not json")
    produce_raw(settings.kafka, name, b"x", b"[1, 2]")
    produce(settings.kafka, name, [{"asset": PUMP, "work_order_id": "wo-1"}])
    assert announced_work_orders(settings.kafka, name) == {"wo-1"}
