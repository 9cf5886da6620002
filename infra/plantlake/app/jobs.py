"""Entry points of the pipeline layers: `plantlake pipeline run LAYER`, and, as a script, the file
scheduled jobs hand to spark-submit: `spark-submit infra/plantlake/app/jobs.py LAYER [--once]`."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from rich.console import Console

from plantlake.adapters.batch_errors import await_query, own_error
from plantlake.adapters.restarts import backoff_s, failed_for_good, failure_reason
from plantlake.app.query_watch import DeltaVersions, QueryWatch
from plantlake.core.clock import log_stamp
from plantlake.core.config import Settings
from plantlake.core.errors import ConfigError, PlantlakeError
from plantlake.core.logging_setup import configure_logging, level_from_env
from plantlake.services.minio import delta_rs_options

# Each layer's module has `run(spark, settings, *, once) -> StreamingQuery | list[StreamingQuery]`.
LAYERS = {
    "bronze": "plantlake.pipelines.jobs.bronze",
    "silver": "plantlake.pipelines.jobs.silver",
    "gold": "plantlake.pipelines.jobs.gold",
    # silver and gold's aggregates in one query: what `pipeline up` runs.
    "cold": "plantlake.pipelines.jobs.cold_path",
    # gold.features; with `score`, the champion models score each batch's rows.
    "features": "plantlake.pipelines.jobs.gold_features",
}
JOBS = (*LAYERS, "up", "maintain", "cmms", "score")


def run_layer(
    settings: Settings,
    layer: str,
    *,
    once: bool,
    console: Console,
    spark=None,
    score: bool = False,
) -> None:
    """Start one layer's queries and wait (until done with `once`, else until one stops).

    `score` (features only) has the champion models score each batch's feature rows into
    gold.predictions, work orders and alarms.
    """
    from plantlake.adapters.checkpoints import adopt_legacy_checkpoints, refuse_if_busy
    from plantlake.adapters.spark import get_spark

    if layer not in LAYERS:
        raise ConfigError(f"Unknown pipeline layer {layer!r}; known: {list(LAYERS)}.")
    if score and layer != "features":
        raise ConfigError(f"--score is for the features layer, not {layer!r}.")
    options = {"on_features": scoring_hook(settings)} if score else {}
    adopt_legacy_checkpoints(settings, console.print)
    refuse_if_busy(settings, layer)  # each layer's checkpoint is named after it
    spark = spark or get_spark(settings, app_name=f"plantlake-{layer}")
    watch = QueryWatch(settings.home, say=_progress_printer(console),
                       table_version=DeltaVersions(delta_rs_options(settings))).start()  # fmt: skip
    try:
        _run_queries(spark, settings, layer, once=once, console=console, watch=watch,
                     options=options)  # fmt: skip
    except BaseException:
        watch.close()
        raise
    for line in watch.close():
        console.print(line)


def _progress_printer(console: Console):
    def say(line: str) -> None:
        console.print(f"[dim]{log_stamp()}[/] {line}", highlight=False)

    return say


def _run_queries(spark, settings: Settings, layer: str, *, once: bool, console: Console,
                 watch: QueryWatch, options: dict) -> None:  # fmt: skip
    """Start the layer's queries and wait for them, restarting a failed continuous run."""
    failures = 0
    spark.streams.resetTerminated()  # awaitAnyTermination must see only this run's queries
    while True:
        result = importlib.import_module(LAYERS[layer]).run(spark, settings, once=once, **options)
        queries = result if isinstance(result, list) else [result]
        watch.follow(queries)
        names = ", ".join(q.name or q.id for q in queries)
        console.print(f"{layer}: {names} started ({'once' if once else 'continuous'})")
        if once:
            for query in queries:
                await_query(query)  # a batch's PlantlakeError comes back as itself
            break
        try:
            spark.streams.awaitAnyTermination()  # raises the failure of the query that stopped
            break
        except Exception as exc:  # a StreamingQueryException, with the JVM's cause inside
            own = next(filter(None, (own_error(q, exc) for q in queries)), None)
            progressed = any(q.recentProgress for q in queries)
            failures = 1 if progressed else failures + 1
            if failed_for_good(own or exc) or failures > settings.pipeline.restarts:
                if own is not None:
                    raise own from exc
                raise
            wait_s = backoff_s(failures)
            console.print(f"{log_stamp()} {layer}: {names} failed ({failure_reason(exc)}); restart "
                          f"{failures} of {settings.pipeline.restarts} in {wait_s}s")  # fmt: skip
            watch.settle()  # the failed run's last batches count too
            for query in spark.streams.active:
                query.stop()
            spark.streams.resetTerminated()
            time.sleep(wait_s)


def scoring_hook(settings: Settings):
    """The features job's hook that scores with the champions (plantlake.models.jobs.scoring)."""
    from plantlake.models.jobs.streaming_scorer import streaming_scorer

    return streaming_scorer(settings)


def run_hot_path(settings: Settings, *, once: bool, console: Console) -> None:
    """The hot path in this process (no Spark): until Ctrl-C or SIGTERM, or caught up with
    `once`; either way it commits what it folded, then its offsets, before it exits."""
    import signal
    import threading

    from plantlake.pipelines.jobs.hot_path import HotPath

    def log(line: str) -> None:
        console.print(f"[dim]{log_stamp()}[/] {line}", highlight=False)

    stop = threading.Event()

    def request_stop(signum, _frame) -> None:
        log(f"hot path: {signal.Signals(signum).name}: committing what was folded, then stopping")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    hot = HotPath(settings, log=log, status_path=hot_path_status_file(settings))
    mode = "once" if once else "continuous"
    log(f"hot path: started ({mode}), consumer group {settings.hot_path.group_id}")
    stats = hot.run(once=once, stop=stop)
    log(f"hot path: done; {stats.summary()}")


def hot_path_status_file(settings: Settings) -> Path:
    """Where a running hot path writes its status (read by `plantlake pipeline up`)."""
    return settings.home / "run" / f"hot-path-{settings.hot_path.group_id}.json"


def run_maintenance(
    settings: Settings, *, console: Console, retention_hours: int, spark=None
) -> None:
    from plantlake.adapters.spark import get_spark
    from plantlake.pipelines.jobs.table_upkeep import maintain_lake

    spark = spark or get_spark(settings, app_name="plantlake-maintain")
    for result in maintain_lake(spark, settings, retention_hours=retention_hours):
        if result.skipped:
            console.print(f"{result.table}: skipped ({result.skipped})")
        else:
            console.print(f"{result.table}: optimized (clustered by {', '.join(result.clustered_by or ()) or 'nothing'}, "
                          f"{result.files_removed_by_optimize} files compacted), vacuumed")  # fmt: skip


def run_cmms(settings: Settings, *, path: Path | None, console: Console, spark=None) -> None:
    """Load a CMMS export (default: the simulator's) into silver.maintenance_events, once."""
    from plantlake.adapters.spark import get_spark
    from plantlake.core.contracts import SILVER_MAINTENANCE_EVENTS
    from plantlake.pipelines.jobs.cmms import load_cmms_export
    from plantlake.simulator.cmms_export import cmms_export_path

    path = path or cmms_export_path(settings)
    spark = spark or get_spark(settings, app_name="plantlake-cmms")
    load = load_cmms_export(spark, settings.lake, path)
    console.print(f"{SILVER_MAINTENANCE_EVENTS.name}: {load.read} events in {path}, {load.inserted} "
                  f"new, {load.updated} updated; {load.total} in the table")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """The spark-submit entry point: settings come from the environment, as for the CLI."""
    from plantlake.core.config import load_settings

    parser = argparse.ArgumentParser(description="Run a plantlake pipeline job.")
    parser.add_argument("job", choices=JOBS)
    parser.add_argument("--once", action="store_true", help="process what is available, then stop")
    parser.add_argument(
        "--score", action="store_true", help="features: score each batch with the champions"
    )
    parser.add_argument(
        "--retention-hours", type=int, default=168, help="VACUUM retention (maintain)"
    )
    parser.add_argument(
        "--file", type=Path, help="CMMS CSV export (cmms; default: the simulator's)"
    )
    args = parser.parse_args(argv)
    configure_logging(level_from_env())
    try:
        _run_job(args, load_settings(), Console())
    except PlantlakeError as exc:  # the same one paragraph as the CLI prints, not a traceback
        print(f"{log_stamp()} error {exc.for_user()}", file=sys.stderr, flush=True)
        sys.exit(1)


def _run_job(args: argparse.Namespace, settings: Settings, console: Console) -> None:
    if args.job == "up":
        from plantlake.app.lake_path import run_lake_path

        run_lake_path(settings, console=console)
    elif args.job == "maintain":
        run_maintenance(settings, console=console, retention_hours=args.retention_hours)
    elif args.job == "cmms":
        run_cmms(settings, path=args.file, console=console)
    elif args.job == "score":
        from plantlake.adapters.spark import get_spark
        from plantlake.models.jobs.scoring import run_batch_scoring

        spark = get_spark(settings, app_name="plantlake-score")
        run_batch_scoring(spark, settings, console=console)
    else:
        run_layer(settings, args.job, once=args.once, console=console, score=args.score)


if __name__ == "__main__":
    main()
