"""Scoring as the gold.features job's hook: each micro-batch's feature rows scored with the
champions, riding out an unreachable registry without losing a row (models layer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import DataFrame

from plantlake.adapters.delta import read_delta, table_exists, writer_id
from plantlake.adapters.mlflow_tracking import fail_fast_requests
from plantlake.adapters.restarts import failure_reason
from plantlake.core.config import LakeSettings, Settings
from plantlake.core.contracts import GOLD_FEATURES, GOLD_PREDICTIONS
from plantlake.core.errors import SourceError
from plantlake.models.jobs.champions import Champion, UntrustedChampion, champions
from plantlake.models.jobs.scoring import STREAM, score_and_act, unscored


def _cannot_score_now() -> tuple[type[BaseException], ...]:
    """What stops scoring for now but not the features job: an unreachable registry (our
    SourceError from the look-ups, MLflow's or requests' own from a model download), or a
    champion alias on a version promotion did not pass."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    return SourceError, UntrustedChampion, MlflowException, RequestException


def streaming_scorer(settings: Settings) -> Callable[[DataFrame, int], None]:
    """The gold.features job's hook: score each batch's feature rows with the champions.

    The registry is asked once per batch (two small REST calls), so a promotion takes effect on
    the next batch; without any champion the hook does nothing. While the registry cannot be
    reached, or a champion alias points at a version promotion did not pass, the hook skips,
    saying why, and the features job goes on; the first batch after that is cured (and the first
    batch of every run) scores every gold.features row the champions have not scored, so nothing
    skipped stays unscored.
    """
    app_ids: dict[str, str] = {}
    behind = [True]  # a run starts by catching up on what an earlier one skipped
    # MLflow's defaults retry an unreachable registry for minutes, in every batch.
    fail_fast_requests()

    def on_features(rows: DataFrame, batch_id: int) -> None:
        try:
            found = champions(settings)
            if not found:
                return
            spark = rows.sparkSession
            checkpoint = settings.lake.checkpoint_path("features")
            if checkpoint not in app_ids:
                app_ids[checkpoint] = f"scoring:{writer_id(spark, checkpoint)}"
            work = (
                _catch_up(rows, settings.lake, found) if behind[0] else [(c, rows) for c in found]
            )
            summary = score_and_act(
                settings, work, spark=spark, scoring_mode=STREAM, txn=(app_ids[checkpoint], batch_id)
            )  # fmt: skip
        except _cannot_score_now() as exc:
            behind[0] = True
            print(f"scoring: batch {batch_id} skipped, its rows are scored once the champions "
                  f"can be loaded again: {failure_reason(exc)}", flush=True)  # fmt: skip
            return
        caught_up = " (caught up on rows skipped before)" if behind[0] else ""
        behind[0] = False
        print(f"scoring: batch {batch_id}: {summary.line()}{caught_up}", flush=True)

    return on_features


def _catch_up(rows: DataFrame, lake: LakeSettings, found: Sequence[Champion]):
    """Per champion, the batch's rows and every gold.features row it has not scored."""
    spark = rows.sparkSession
    features = read_delta(spark, GOLD_FEATURES.path(lake))
    path = GOLD_PREDICTIONS.path(lake)
    predictions = read_delta(spark, path) if table_exists(spark, path) else None
    key = ["asset", "feature_time_ms"]
    return [
        (c, rows.unionByName(unscored(features, predictions, c).select(*rows.columns))
         .dropDuplicates(key))
        for c in found
    ]  # fmt: skip
