"""The `plantlake` command: one subcommand group per layer; each command parses, loads, calls."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Literal

import click
import typer
from rich.console import Console
from rich.markup import escape

from plantlake.app.edge_sources import edge_window_features
from plantlake.core.errors import PlantlakeError
from plantlake.core.logging_setup import DEFAULT_LEVEL, LEVEL_ENV, Level, configure_logging

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
spark_app = typer.Typer(no_args_is_help=True, help="Spark: jars and cluster submission.")
pipeline_app = typer.Typer(
    no_args_is_help=True, help="Medallion pipelines: bronze, silver, gold, features."
)
app.add_typer(spark_app, name="spark")
app.add_typer(pipeline_app, name="pipeline")
models_app = typer.Typer(
    no_args_is_help=True,
    help="Predictive maintenance: train, evaluate, promote, roll back, score (MLflow).",
)
app.add_typer(models_app, name="models")


# Logs and CI are read wider than a terminal's default 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
_state: dict = {"config": None, "verbose": False}

Services = Annotated[list[str] | None, typer.Argument(help="Services (default: all).")]


def _settings(with_secrets: bool = False):
    from plantlake.app.local_secrets import ensure_local_secrets, make_home_private
    from plantlake.core.config import load_settings

    settings = load_settings(_state["config"])
    make_home_private(settings.home)
    return ensure_local_secrets(settings, _state["config"]) if with_secrets else settings


@app.callback()
def _root(
    config: Annotated[Path | None, typer.Option(help="TOML settings file.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks.")] = False,
    log_level: Annotated[
        Level,
        typer.Option(
            envvar=LEVEL_ENV,
            case_sensitive=False,
            help="Log records at this level and above go to stderr, with UTC timestamps; the "
            "processes plantlake starts log at the same level.",
        ),
    ] = DEFAULT_LEVEL,
) -> None:
    """plantlake: an Industrial-IoT lakehouse on Kafka, Spark and Delta Lake."""
    _state.update(config=config, verbose=verbose)
    if config is not None:
        # Processes plantlake starts (the workbench service, edge forwarders) read the same file.
        os.environ["PLANTLAKE_CONFIG"] = str(config.resolve())
    configure_logging(log_level)


@app.command()
def install(services: Services = None) -> None:
    """Install what the local stack needs (jars, MinIO, Mosquitto) without starting it."""
    from plantlake.services import stack

    settings = _settings(with_secrets=True)
    stack.install(settings, stack.services(settings, services or ()), console)


@app.command()
def up(services: Services = None) -> None:
    """Install what is missing and start the local stack (idempotent)."""
    from plantlake.services import stack

    settings = _settings(with_secrets=True)
    healths = stack.up(settings, services or (), console)
    stack.render_status(healths, console)
    if not all(h.up for h in healths):
        raise typer.Exit(1)


@app.command()
def down(services: Services = None) -> None:
    """Stop the local stack (data is kept)."""
    from plantlake.services import stack

    stack.down(_settings(), services or (), console)


@app.command()
def status(
    services: Services = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Health and endpoint of each service; exits 1 if any is down."""
    from plantlake.services import stack

    healths = stack.status(_settings(), services or ())
    if as_json:
        print(json.dumps({"healthy": all(h.up for h in healths),
                          "services": [h.as_dict() for h in healths]}, indent=2))  # fmt: skip
    else:
        stack.render_status(healths, console)
    if not all(h.up for h in healths):
        raise typer.Exit(1)


@app.command()
def demo(
    seconds: Annotated[float, typer.Option(min=5, help="How long the plant runs.")] = 40.0,
    ml: Annotated[
        bool, typer.Option(help="Also a month of history to trained models and work orders.")
    ] = True,
) -> None:
    """The end-to-end demo: simulated plant, edge processes, Kafka, bronze, silver and gold, then
    predictive maintenance (features, MLflow training and promotion, scoring, work orders)."""
    from plantlake.app.demo import run_demo
    from plantlake.services import stack

    settings = _settings()
    needed = ("minio", "kafka", "mosquitto", *(("mlflow",) if ml else ()))
    down_now = [h for h in stack.status(settings, needed) if not h.up]
    if down_now:
        raise PlantlakeError(
            f"The demo needs {', '.join(h.name for h in down_now)}, which "
            f"{'is' if len(down_now) == 1 else 'are'} down.",
            hint="Run `plantlake up` first (or `make demo`, which does).",
        )
    raise typer.Exit(run_demo(settings, console, seconds=seconds, ml=ml))


def _with_simulator(settings, speed: float | None, seed: int | None):
    updates = {k: v for k, v in (("speed", speed), ("seed", seed)) if v is not None}
    if not updates:
        return settings
    return settings.model_copy(update={"simulator": settings.simulator.model_copy(update=updates)})


Speed = Annotated[float | None, typer.Option(min=0.001, help="Simulated seconds per second.")]
Seed = Annotated[int | None, typer.Option(help="Plant seed (default from settings).")]


@app.command()
def simulate(
    protocols: Annotated[
        list[str] | None, typer.Argument(help="opcua, modbus, sparkplug (default: all).")
    ] = None,
    speed: Speed = None,
    seed: Seed = None,
) -> None:
    """Run the simulated plant: OPC-UA and Modbus device servers, Sparkplug edge nodes."""
    from plantlake.app.simulate import PROTOCOLS, run_simulation

    unknown = set(protocols or ()) - set(PROTOCOLS)
    if unknown:
        raise PlantlakeError(
            f"Unknown protocol(s) {sorted(unknown)}; the simulator speaks {list(PROTOCOLS)}."
        )
    settings = _with_simulator(_settings(with_secrets=True), speed, seed)
    run_simulation(settings, console, protocols=protocols or PROTOCOLS)


ingest_app = typer.Typer(no_args_is_help=True, help="Edge processes, and the historian backfill.")
app.add_typer(ingest_app, name="ingest")
# plantlake.app.edge_sources.SOURCES, spelled out: importing it costs `--help` 0.8 s of pydantic.
EDGE_SOURCES = ("opcua", "modbus", "sparkplug", "daq")


def _edge_command(source: str):
    def ingest(
        config: Annotated[
            Path | None,
            typer.Option(
                help="A site's TOML settings file (as the global --config): the edge reads only "
                "the devices it describes and never the simulated plant."
            ),
        ] = None,
        register_map: Annotated[
            Path | None, typer.Option(exists=True, help="Modbus register map YAML.")
        ] = None,
        speed: Speed = None,
        seed: Seed = None,
    ) -> None:
        from plantlake.app.edge_sources import make_source
        from plantlake.ingest.runner import run_edge

        if config is not None:
            _state["config"] = config
        # A named settings file is a site: its credentials come from its environment, none are
        # generated, and the simulated plant stands in for nothing.
        site = _state["config"] is not None
        if site and (speed is not None or seed is not None):
            raise PlantlakeError("--speed and --seed drive the simulated plant, not a site's edge.")
        settings = _with_simulator(_settings(with_secrets=not site), speed, seed)
        run_edge(settings, source, make_source(settings, source, register_map=register_map,
                                               site=site), console)  # fmt: skip

    ingest.__doc__ = (
        f"Run the {source} edge process (protocol -> filter -> disk buffer -> Kafka) until stopped."
    )
    return ingest


for _source in EDGE_SOURCES:
    ingest_app.command(_source)(_edge_command(_source))


@ingest_app.command("history")
def ingest_history(
    days: Annotated[float, typer.Option(min=0.0001, help="How much history, ending now.")] = 30.0,
    step: Annotated[str, typer.Option(help="Archive interval: 30s, 1m, 5m, 1h.")] = "1m",
    asset: Annotated[
        list[str] | None, typer.Option("--asset", help="Asset path, repeatable (default: all).")
    ] = None,
    seed: Seed = None,
) -> None:
    """Backfill the simulated plant's history into Kafka, with its CMMS export.

    The backfilled plant starts DAYS ago and its history ends now: run it before `plantlake
    simulate`, whose own plant starts when it is launched.
    """
    from plantlake.simulator.historian import backfill, parse_step

    settings = _with_simulator(_settings(), None, seed)
    backfill(settings, days=days, step_ms=parse_step(step), assets=asset, console=console)


@spark_app.command("jars")
def spark_jars_cmd() -> None:
    """Print the extra jars, comma-separated, for `spark-submit --jars`."""
    from plantlake.services.jars import spark_jars

    print(",".join(str(j) for j in spark_jars(_settings())))


@spark_app.command(
    "submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def spark_submit(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Job file.")],
    master: Annotated[
        str | None, typer.Option(help="Default: the local standalone master.")
    ] = None,
) -> None:
    """spark-submit a job to the cluster with plantlake's jars; extra args go to the job."""
    _exec_spark_submit(script, list(ctx.args), master)


def _exec_spark_submit(script: Path, args: list[str], master: str | None) -> None:
    from plantlake.adapters.spark import submit_args
    from plantlake.services.jars import installed_spark_jar_dir
    from plantlake.services.spark_cluster import spark_env, spark_home

    settings = _settings()
    jar_dir = installed_spark_jar_dir(settings)
    argv = [
        str(spark_home() / "bin" / "spark-submit"),
        *submit_args(settings, jar_dir, master=master or settings.spark.cluster_url),
        str(script), *args,
    ]  # fmt: skip
    console.print(f"[dim]{' '.join(argv[:3])} ... {script} {' '.join(args)}[/]")
    sys.stdout.flush()
    os.execve(argv[0], argv, {**os.environ, **spark_env(settings)})


Once = Annotated[bool, typer.Option("--once", help="Process what is available, then stop.")]
Score = Annotated[
    bool,
    typer.Option(
        "--score",
        help="features: the champion models score each batch into gold.predictions, work "
        "orders and alarms (`pipeline up` always does).",
    ),
]


@pipeline_app.command("run")
def pipeline_run(
    layer: Annotated[str, typer.Argument(help="hot, bronze, silver, cold, gold, features or cmms")],
    once: Once = False,
    score: Score = False,
    file: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="cmms: the CSV export (default: the simulator's)."
        ),
    ] = None,
) -> None:
    """Run a pipeline layer in this process, continuously or once (availableNow); `hot` is the
    hot path that keeps gold.twin_state (no Spark); cmms loads the CMMS export into
    silver.maintenance_events (always once)."""
    from plantlake.app.jobs import run_cmms, run_hot_path, run_layer

    if layer == "hot":
        run_hot_path(_settings(), once=once, console=console)
        return
    if layer == "cmms":
        run_cmms(_settings(), path=file, console=console)
        return
    if file is not None:
        raise PlantlakeError(f"--file is for the cmms layer, not {layer!r}.")
    run_layer(_settings(), layer, once=once, console=console, score=score)


@pipeline_app.command("up")
def pipeline_up(
    hot: Annotated[bool, typer.Option(help="Also run the hot path (gold.twin_state).")] = True,
) -> None:
    """Run the lake path as deployed, until Ctrl-C: the hot path, bronze, the cold path (silver
    and aggregates) and scheduled features, with a live status line."""
    from plantlake.app.lake_path import run_lake_path

    run_lake_path(_settings(), console=console, hot=hot)


@pipeline_app.command("submit")
def pipeline_submit(
    job: Annotated[
        str, typer.Argument(help="up, bronze, silver, cold, gold, features, maintain or cmms")
    ],
    once: Once = False,
    score: Score = False,
    master: Annotated[
        str | None, typer.Option(help="Default: the local standalone master.")
    ] = None,
) -> None:
    """spark-submit a pipeline job to the cluster (what the shipped schedules run)."""
    from plantlake.app import jobs

    if job not in jobs.JOBS:
        raise PlantlakeError(f"Unknown job {job!r}; jobs are {list(jobs.JOBS)}.")
    flags = [*(["--once"] if once else []), *(["--score"] if score else [])]
    _exec_spark_submit(Path(jobs.__file__), [job, *flags], master)


@app.command()
def validate(
    docs_dir: Annotated[
        Path | None, typer.Option(help="Default: $PLANTLAKE_HOME/data-docs.")
    ] = None,
) -> None:
    """Great Expectations checkpoint over silver and gold from the same YAML rules; Data Docs HTML."""
    from plantlake.adapters.spark import get_spark
    from plantlake.pipelines.jobs.validate import validate_lake
    from plantlake.pipelines.transforms.validation_report import format_report

    settings = _settings()
    spark = get_spark(settings, app_name="plantlake-validate")
    report = validate_lake(spark, settings, docs_dir=docs_dir)
    print(format_report(report))
    raise typer.Exit(0 if report.success else 1)


@app.command()
def export(
    table: Annotated[str, typer.Argument(help="Lake table, e.g. silver.telemetry.")],
    fmt: Annotated[Literal["csv", "parquet"], typer.Option("--format")] = "csv",
    asset: Annotated[
        list[str] | None, typer.Option("--asset", help="Asset path, repeatable (default: all).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this ISO 8601 time (UTC unless it says).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this ISO 8601 time.")] = None,
    out: Annotated[Path | None, typer.Option(dir_okay=False, help="Default: TABLE.FORMAT here.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:  # fmt: skip
    """Write a lake table (or some assets' time range of it) to CSV or Parquet, without Spark.

    CSV is for spreadsheets: timestamps in ISO 8601 UTC, nested values as JSON. The time range
    filters the table's own time column (a reading's event time, a window's start).
    """
    from plantlake.lake import export_table

    start = _utc_time("--since", since) if since else None
    end = _utc_time("--until", until) if until else None
    if start and end and start >= end:
        raise PlantlakeError(f"--since {since} is not before --until {until}.")
    settings = _settings()
    with console.status(f"{table}: exporting ...") as shown:
        result = export_table(table, out or Path(f"{table}.{fmt}"), fmt=fmt, asset=asset,
                              since=start, until=end, overwrite=force, settings=settings,
                              progress=lambda n: shown.update(f"{table}: {n:,} rows ..."))  # fmt: skip
    missing = " (the table is not in the lake yet)" if result.version is None else ""
    console.print(f"{table}: {result.rows:,} rows written to {result.path}{missing}")


@app.command("app")
def workbench_app(
    host: Annotated[str | None, typer.Option(help="Default: workbench.host (loopback).")] = None,
    port: Annotated[int | None, typer.Option(help="Default: workbench.port (8050).")] = None,
) -> None:
    """Serve the planners' workbench (quarantine review, twin, work orders, live health)."""
    from plantlake.workbench.server import serve

    serve(_settings(with_secrets=_state["config"] is None), host=host, port=port)


@app.command("app-password")
def workbench_password(
    name: Annotated[str, typer.Argument(help="The user's login name.")],
    role: Annotated[
        Literal["planner", "viewer"], typer.Option(help="planner decides; viewer only reads.")
    ] = "viewer",
) -> None:  # fmt: skip
    """Hash a workbench password (asked twice, not echoed) and print the settings to add."""
    from plantlake.workbench.auth import hash_password

    password = typer.prompt(
        f"Password for {name}", hide_input=True, confirmation_prompt=True, err=True
    )  # on stderr: stdout holds only the settings, to paste or redirect
    if len(password) < 8:
        raise PlantlakeError("A workbench password needs at least 8 characters.")
    user = {"password_hash": hash_password(password), "role": role}
    users = {k: v.model_dump() for k, v in _settings().workbench.users.items()} | {name: user}
    print(f"# In $PLANTLAKE_HOME/secrets.env or the environment (all {len(users)} users):")
    print(f"PLANTLAKE_WORKBENCH__USERS='{json.dumps(users)}'")
    print("# or in a TOML settings file (--config):")
    print(f'[workbench.users."{name}"]\npassword_hash = "{user["password_hash"]}"\nrole = "{role}"')


reference_app = typer.Typer(no_args_is_help=True, help="Reference data: asset registry and units.")
app.add_typer(reference_app, name="reference")


@reference_app.command("load")
def reference_load(seed: Seed = None) -> None:
    """Write the simulated plant's registry file and import it, as a site imports its own."""
    from plantlake.adapters.spark import get_spark
    from plantlake.app.registry_files import load_simulated_plant
    from plantlake.simulator.plant import build_plant
    from plantlake.simulator.registry import plant_registry_entries

    settings = _with_simulator(_settings(), None, seed)
    entries = plant_registry_entries(build_plant(settings.simulator.seed),
                                     edge_window_features(settings))  # fmt: skip
    spark = get_spark(settings, app_name="plantlake-reference")
    _print_load(*load_simulated_plant(spark, settings, entries))


def _print_load(path: Path, entries: int, load) -> None:
    console.print(f"{path}: {entries} entries -> reference.asset_registry: {load.inserted} added, "
                  f"{load.updated} changed, {load.unchanged} kept as they were; "
                  "reference.units rewritten")  # fmt: skip


RegistryFile = Annotated[Path | None, typer.Option(help="Registry file in that format.")]


def _one_file(csv_file: Path | None, yaml_file: Path | None) -> tuple[Path, str]:
    if (csv_file is None) == (yaml_file is None):
        raise typer.BadParameter("give exactly one of --csv FILE or --yaml FILE")
    return (csv_file, "csv") if csv_file is not None else (yaml_file, "yaml")  # type: ignore[return-value]


@reference_app.command("import")
def reference_import(
    csv_file: Annotated[Path | None, typer.Option("--csv", exists=True, dir_okay=False,
                                                  help="Registry CSV (see infra/schemas).")] = None,
    yaml_file: Annotated[Path | None, typer.Option("--yaml", exists=True, dir_okay=False,
                                                   help="Registry YAML.")] = None,
) -> None:  # fmt: skip
    """Validate a site's asset registry file and MERGE it into reference.asset_registry.

    Every bad line is named and nothing is written until the whole file is valid. A row whose
    (asset, sensor, valid_from) the table has is replaced (a remount gives the old interval its
    valid_to); rows the file does not mention stay. Silver reads the registry when it starts.
    """
    from plantlake.adapters.spark import get_spark
    from plantlake.app.registry_files import import_registry_file

    path, kind = _one_file(csv_file, yaml_file)
    settings = _settings()
    spark = get_spark(settings, app_name="plantlake-reference")
    _print_load(path, *import_registry_file(spark, settings, path, kind))


@reference_app.command("schema")
def reference_schema() -> None:
    """Print the registry file's JSON schema (also in infra/schemas/asset_registry.schema.json)."""
    from plantlake.core.registry_entries import registry_json_schema

    print(json.dumps(registry_json_schema(), indent=2))


@reference_app.command("export")
def reference_export(
    csv_file: Annotated[Path | None, typer.Option("--csv", dir_okay=False)] = None,
    yaml_file: Annotated[Path | None, typer.Option("--yaml", dir_okay=False)] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write reference.asset_registry in the import format (import -> export -> import is a no-op)."""
    from plantlake.adapters.spark import get_spark
    from plantlake.app.registry_files import export_registry_file

    path, kind = _one_file(csv_file, yaml_file)
    if path.exists() and not force:
        raise PlantlakeError(f"{path} exists.", hint="Pass --force to overwrite it.")
    settings = _settings()
    spark = get_spark(settings, app_name="plantlake-reference")
    count = export_registry_file(spark, settings, path, kind)
    console.print(f"reference.asset_registry: {count} entries written to {path}")


discover_app = typer.Typer(
    no_args_is_help=True,
    help="Draft the asset registry from what devices describe: files to review, never loaded.",
)
reference_app.add_typer(discover_app, name="discover")
DraftDir = Annotated[
    Path, typer.Option("--out", file_okay=False, help="Folder for the registry draft and tag list.")
]
Force = Annotated[bool, typer.Option("--force", help="Overwrite drafts already in --out.")]


@discover_app.command("opcua")
def reference_discover_opcua(
    endpoint: Annotated[str, typer.Argument(help="The server, opc.tcp://host:port/path.")],
    out: DraftDir,
    force: Force = False,
) -> None:
    """Browse an OPC-UA server's AnalogItems (EngineeringUnits, EURange) into a registry draft
    and the edge's tag list; logs in as the edge does (settings opcua.*)."""
    import asyncio

    from plantlake.app.discover import refuse_overwrite, write_and_report
    from plantlake.ingest.opcua.discover import discover_opcua

    refuse_overwrite(out, "opcua", force=force)
    settings = _settings(with_secrets=_state["config"] is None)
    opcua = settings.opcua.model_copy(update={"endpoint": endpoint})
    write_and_report(console, asyncio.run(discover_opcua(opcua, settings.pki)), out, force=force)


@discover_app.command("sparkplug")
def reference_discover_sparkplug(
    out: DraftDir,
    seconds: Annotated[float, typer.Option(min=1, help="How long to listen for births.")] = 30.0,
    force: Force = False,
) -> None:
    """Listen to the Sparkplug births (NBIRTH, DBIRTH) on the broker for SECONDS into a registry
    draft and the edge's metric list. Listens only: start it, then restart the nodes or the
    primary host so they birth."""
    from plantlake.app.discover import refuse_overwrite, write_and_report
    from plantlake.ingest.sparkplug.discover import discover_sparkplug

    refuse_overwrite(out, "sparkplug", force=force)
    settings = _settings(with_secrets=_state["config"] is None)
    console.print(f"listening to Sparkplug births for {seconds:g}s ...")
    write_and_report(console, discover_sparkplug(settings.mqtt, seconds), out, force=force)


@pipeline_app.command("maintain")
def pipeline_maintain(
    retention_hours: Annotated[
        int, typer.Option(min=168, help="VACUUM keeps this much history.")
    ] = 168,
) -> None:
    """OPTIMIZE (clustered by asset) and VACUUM every lake table."""
    from plantlake.app.jobs import run_maintenance

    run_maintenance(_settings(), console=console, retention_hours=retention_hours)


@models_app.command("train")
def models_train(
    cutoff: Annotated[
        str | None, typer.Option(help="Train on what was known by this UTC time (ISO 8601).")
    ] = None,
    as_of: Annotated[
        str, typer.Option(help="event: feature rows stamped by then; ingest: also arrived by then.")
    ] = "event",
) -> None:
    """Build a point-in-time training set, train both models, log them to MLflow as challengers."""
    from plantlake.adapters.spark import get_spark
    from plantlake.models.jobs.train import train_models

    settings = _settings()
    cutoff_ms = _utc_ms(cutoff) if cutoff else None
    spark = get_spark(settings, app_name="plantlake-train")
    train_models(spark, settings, console=console, cutoff_ms=cutoff_ms, as_of=as_of)


ModelName = Annotated[
    str | None, typer.Argument(help="Registered model (default: both plantlake models).")
]


@models_app.command("promote")
def models_promote(name: ModelName = None) -> None:
    """Make the challenger champion if it beats the champion on the latest holdout."""
    from plantlake.adapters.spark import get_spark
    from plantlake.models.jobs.promotion import promote

    settings = _settings()
    spark = get_spark(settings, app_name="plantlake-promote")
    names = [name] if name else [settings.models.failure_model, settings.models.anomaly_model]
    decisions = [promote(spark, settings, n, console=console) for n in names]
    raise typer.Exit(0 if all(d.promoted for d in decisions) else 3)


@models_app.command("rollback")
def models_rollback(name: ModelName = None) -> None:
    """Point champion back at the previous champion."""
    from plantlake.models.jobs.promotion import rollback

    settings = _settings()
    for n in [name] if name else [settings.models.failure_model, settings.models.anomaly_model]:
        rollback(settings, n, console=console)


@models_app.command("evaluate")
def models_evaluate(
    seeds: Annotated[
        str, typer.Option(help="Plant seeds, comma-separated (at least three).")
    ] = "7,8,9",
    days: Annotated[float, typer.Option(min=10, help="History of each plant, in days.")] = 60,
    step_minutes: Annotated[
        int, typer.Option(min=1, help="One historian reading this often.")
    ] = 10,
    budget: Annotated[
        float | None, typer.Option(help="Alert budget of the tables (default: the settings').")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the PNG and CSVs (default: $PLANTLAKE_HOME/evaluation)."),
    ] = None,
) -> None:
    """Every method at the same alert budgets on simulated plants: recall, lead time, per mode,
    with bootstrap intervals over failures; budget curves to a PNG. Needs no service."""
    from plantlake.app.evaluate import evaluate_plants

    try:
        chosen = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError as exc:
        raise PlantlakeError(
            f"--seeds {seeds!r} is not a comma-separated list of integers."
        ) from exc
    if len(set(chosen)) < 3:
        raise PlantlakeError(
            f"--seeds {seeds!r}: give at least three different seeds; one plant's failures are too "
            "few to tell methods apart."
        )
    settings = _settings()
    evaluate_plants(settings, console, seeds=chosen, days=days, step_ms=step_minutes * 60_000,
                    out_dir=out or settings.home / "evaluation", budget=budget)  # fmt: skip


def _utc_ms(text: str) -> int:
    return int(_utc_time("--cutoff", text).timestamp() * 1000)


def _utc_time(option: str, text: str):
    """An ISO 8601 time from the command line; UTC unless it names its zone."""
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PlantlakeError(
            f"{option} {text!r} is not an ISO 8601 time (e.g. 2026-11-27T08:00 or "
            "2026-11-27T08:00:00+01:00; UTC unless it says)."
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@models_app.command("score")
def models_score() -> None:
    """Score new gold.features rows with the champions; open/close work orders, send alarms."""
    from plantlake.adapters.spark import get_spark
    from plantlake.models.jobs.scoring import run_batch_scoring

    settings = _settings()
    run_batch_scoring(get_spark(settings, app_name="plantlake-score"), settings, console=console)


def main() -> None:
    try:
        result = app(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except PlantlakeError as exc:
        if _state["verbose"]:
            traceback.print_exc()
        err = Console(stderr=True)
        err.print(f"[bold red]error[/] {escape(exc.for_user())}", highlight=False,
                  soft_wrap=True)  # fmt: skip
        if not _state["verbose"]:
            err.print("[dim](--verbose shows the traceback)[/]")
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
