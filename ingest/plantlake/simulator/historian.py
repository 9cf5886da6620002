"""The historian backfill source: weeks of the simulated plant's past as canonical readings on the
telemetry topic, its edge window features on the edge_features topic, and the CMMS export of the
same span (ingest layer).

Plants bootstrap predictive maintenance from their historian: the live simulator is far too slow
to accumulate failures. `historian_readings` is the pure export (one reading per sensor per
step, as the historian archived it); `historian_features` adds what the edge computes live from
high-rate sensors (window features of one waveform window per step, with the edge's filter
config), so a model trained on the backfill sees the features serving sees. `backfill` produces
both to Kafka, whence they flow through bronze, silver and gold like any live reading, and writes
the CMMS export the labels come from.

The backfilled plant starts `days` ago (at the UTC midnight before, so a backfill re-run on the
same day rebuilds the same plant and sends the same readings, which silver deduplicates) and its
history ends now. `plantlake simulate`, started afterwards, builds its own plant from its launch,
so the two never describe the same instant differently. The simulator rewrites the same CMMS
export with its own plant's events: load the backfill's (`plantlake pipeline run cmms`) first.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from plantlake.core import clock
from plantlake.core.clock import iso_ms
from plantlake.core.config import KafkaSettings, Settings
from plantlake.core.errors import ConfigError, SinkError
from plantlake.core.records import Reading
from plantlake.ingest.filters import FilterConfig, load_filter_config
from plantlake.simulator.historian_features import edge_feature_readings, feature_channels
from plantlake.simulator.plant import (
    HOUR_MS,
    Asset,
    Plant,
    build_plant,
    device_time_ms,
    value_at,
)

HISTORIAN = "historian"  # source_protocol and source_node of every backfilled reading and feature
DAY_MS = 24 * HOUR_MS
# Failures due this soon after the end of the history already show as wear before it (the
# slowest modes degrade for two weeks), so the plant schedules them although the CMMS export
# stops at the end.
LOOKAHEAD_MS = 15 * DAY_MS
_STEP = re.compile(r"^\s*(\d+)\s*(ms|s|m|h)\s*$")
_STEP_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": HOUR_MS}


def parse_step(text: str) -> int:
    """A step like "30s", "1m", "5m" or "1h" in milliseconds; raises ConfigError otherwise."""
    match = _STEP.match(text)
    step = int(match[1]) * _STEP_MS[match[2]] if match else 0
    if step <= 0:
        raise ConfigError(f"Step {text!r} is not a positive duration like 30s, 1m, 5m or 1h.")
    return step


def historian_readings(
    plant: Plant,
    *,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    assets: Sequence[str] | None = None,
) -> Iterator[Reading]:
    """One reading per sensor of each asset every `step_ms` from `start_ms` to before `end_ms`.

    Time-major (every sensor at one step, then the next step), so each sensor's readings come in
    time order. Values and qualities are `value_at`'s, in the unit the device reports; vibration
    is its RMS; NaN readings go out as value None with quality Bad. The event time is the
    device's clock (`device_time_ms`, drift included), as the live sources stamp it; the receive
    time is the instant the historian archived the value. `assets` are asset paths (default all).

    Raises ConfigError for an unknown asset or a non-positive step.
    """
    if step_ms <= 0:
        raise ConfigError(f"The historian step must be positive, got {step_ms} ms.")
    chosen = _assets(plant, assets)
    return _readings(plant, chosen, start_ms=start_ms, end_ms=end_ms, step_ms=step_ms)


def historian_features(
    plant: Plant,
    filters: FilterConfig,
    *,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    assets: Sequence[str] | None = None,
) -> Iterator[Reading]:
    """The edge window features of each high-rate sensor of each asset every `step_ms` from
    `start_ms` to before `end_ms`: one window of the simulated waveform starting at each step,
    featured with `filters` exactly as the live edge does (`EdgeFilter.waveform`: sensor
    `<sensor>.<feature>`, `filter_version` = the config's version), stamped as the historian's.

    Never raw samples: an exception passthrough has nothing to pass on in an archive.

    Raises ConfigError for an unknown asset or a non-positive step.
    """
    if step_ms <= 0:
        raise ConfigError(f"The historian step must be positive, got {step_ms} ms.")
    channels = feature_channels(_assets(plant, assets), filters)
    return edge_feature_readings(plant, channels, version=filters.version, start_ms=start_ms,
                                 end_ms=end_ms, step_ms=step_ms, source=HISTORIAN)  # fmt: skip


def _assets(plant: Plant, paths: Sequence[str] | None) -> tuple[Asset, ...]:
    if not paths:
        return plant.assets
    unknown = [p for p in paths if p not in {a.path for a in plant.assets}]
    if unknown:
        raise ConfigError(
            f"The historian has no asset {', '.join(map(repr, unknown))}; "
            f"assets are {[a.path for a in plant.assets]}."
        )
    return tuple(plant.asset(p) for p in dict.fromkeys(paths))


def _readings(plant: Plant, assets: tuple[Asset, ...], *, start_ms: int, end_ms: int,
              step_ms: int) -> Iterator[Reading]:  # fmt: skip
    channels = [(a, [(s, s.unit or None) for s in a.sensors]) for a in assets]
    for t in range(start_ms, end_ms, step_ms):
        for asset, sensors in channels:
            stamped = device_time_ms(asset, plant, t)
            for sensor, unit in sensors:
                value, quality = value_at(plant, asset, sensor, t)
                yield Reading(
                    asset.path, sensor.name, None if math.isnan(value) else value, unit, quality,
                    stamped, t, HISTORIAN, HISTORIAN,
                )  # fmt: skip


@dataclass(frozen=True)
class BackfillSpan:
    """What a backfill of `days` ending at `now_ms` covers: the plant's start and the step grid."""

    plant_start_ms: int
    first_ms: int  # first step on the grid (a multiple of the step since the epoch)
    end_ms: int  # exclusive
    step_ms: int

    @property
    def steps(self) -> int:
        return max(0, -(-(self.end_ms - self.first_ms) // self.step_ms))


def backfill_span(*, days: float, step_ms: int, now_ms: int) -> BackfillSpan:
    """The span of a backfill of `days` ending at `now_ms` (see the module docstring)."""
    if days <= 0:
        raise ConfigError(f"A backfill needs a positive number of days, got {days}.")
    since = now_ms - int(days * DAY_MS)
    return BackfillSpan(
        plant_start_ms=since - since % DAY_MS,
        first_ms=-(-since // step_ms) * step_ms,
        end_ms=now_ms,
        step_ms=step_ms,
    )


@dataclass(frozen=True)
class BackfillResult:
    topic: str
    records: int  # telemetry readings acknowledged on `topic`
    features_topic: str
    feature_records: int  # window features acknowledged on `features_topic`
    assets: int
    sensors: int
    steps: int
    plant_start_ms: int
    first_ms: int
    end_ms: int
    cmms_events: int
    cmms_path: Path
    seconds: float

    @property
    def records_per_s(self) -> float:
        """Readings and features, over both topics."""
        total = self.records + self.feature_records
        return total / self.seconds if self.seconds > 0 else 0.0


def backfill(settings: Settings, *, days: float, step_ms: int, assets: Sequence[str] | None = None,
             console: Console, cmms_path: Path | None = None,
             now_ms: int | None = None) -> BackfillResult:  # fmt: skip
    """Produce `days` of the simulated plant's history, ending now, to the telemetry topic and
    its edge window features (with the configured edge filters) to the edge_features topic, both
    keyed by asset, and write the CMMS export of the same plant and span (default: where
    `plantlake simulate` writes it).

    Raises ConfigError for bad arguments or filter config and SinkError naming the topic if
    Kafka did not acknowledge every record.
    """
    from plantlake.core.topics import topic
    from plantlake.simulator.cmms_export import cmms_export_path, write_cmms_export

    now_ms = clock.now_ms() if now_ms is None else now_ms
    span = backfill_span(days=days, step_ms=step_ms, now_ms=now_ms)
    plant = build_plant(settings.simulator.seed, start_ms=span.plant_start_ms,
                        horizon_ms=span.end_ms - span.plant_start_ms + LOOKAHEAD_MS)  # fmt: skip
    readings = historian_readings(plant, start_ms=span.first_ms, end_ms=span.end_ms,
                                  step_ms=step_ms, assets=assets)  # fmt: skip
    filters = load_filter_config(settings.edge.filters)
    features = historian_features(plant, filters, start_ms=span.first_ms, end_ms=span.end_ms,
                                  step_ms=step_ms, assets=assets)  # fmt: skip
    chosen = _assets(plant, assets)
    sensors = sum(len(a.sensors) for a in chosen)
    channels = feature_channels(chosen, filters)
    name = topic("telemetry").name(settings.kafka.topic_prefix)
    features_name = topic("edge_features").name(settings.kafka.topic_prefix)
    total = span.steps * sensors
    features_total = span.steps * sum(len(c.features) for c in channels)
    console.print(
        f"historian: plant seed {plant.seed} started {iso_ms(plant.start_ms)}; "
        f"{len(chosen)} assets, {sensors} sensors, every {step_ms / 1000:g} s from "
        f"{iso_ms(span.first_ms)} to {iso_ms(span.end_ms)}: {total} readings to {name}, "
        f"{features_total} window features of {len(channels)} high-rate sensors (filters "
        f"{filters.version}) to {features_name}"
    )
    started = time.monotonic()
    sent = _produce(settings.kafka, name, readings, total=total, console=console)
    featured = _produce(settings.kafka, features_name, features, total=features_total,
                        console=console)  # fmt: skip
    seconds = time.monotonic() - started
    path = cmms_path or cmms_export_path(settings)
    events = write_cmms_export(plant, span.end_ms, path)
    result = BackfillResult(
        topic=name, records=sent, features_topic=features_name, feature_records=featured,
        assets=len(chosen), sensors=sensors, steps=span.steps,
        plant_start_ms=plant.start_ms, first_ms=span.first_ms, end_ms=span.end_ms,
        cmms_events=events, cmms_path=path, seconds=seconds,
    )  # fmt: skip
    console.print(
        f"historian: {sent} readings and {featured} window features acknowledged in "
        f"{seconds:.1f} s "
        f"({result.records_per_s:,.0f}/s); CMMS export of {events} events at {path} "
        "(load it with `plantlake pipeline run cmms` before starting `plantlake simulate`, "
        "which rewrites it)"
    )
    return result


def _produce(kafka: KafkaSettings, name: str, readings: Iterator[Reading], *, total: int,
             console: Console, timeout_s: float = 120.0) -> int:  # fmt: skip
    """Produce every reading keyed by asset, batching in librdkafka; returns how many Kafka
    acknowledged. The Kafka timestamp is the export time (the default), so the topic's retention
    counts from the backfill, not from the readings' weeks-old event times."""
    import orjson
    from confluent_kafka import Producer
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from plantlake.adapters.kafka import producer_config

    failures: list[str] = []

    def on_error(err, _msg) -> None:
        failures.append(str(err))

    producer = Producer(producer_config(kafka) | {
        # Larger batches and a deep local queue: the export is bulk, latency does not matter.
        "linger.ms": 50,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        # Delivery callbacks only for failures: a Python call per record halves throughput.
        "delivery.report.only.error": True,
        "on_delivery": on_error,
    })  # fmt: skip
    keys: dict[str, bytes] = {}
    sent = 0
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console)  # fmt: skip
    with progress:
        task = progress.add_task(f"backfilling {name}", total=total)
        for reading in readings:
            key = keys.get(reading.asset) or keys.setdefault(reading.asset, reading.asset.encode())
            value = orjson.dumps(reading.to_record())
            while True:
                try:
                    producer.produce(name, value, key)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.1)
            sent += 1
            if sent % 20_000 == 0:
                producer.poll(0)
                progress.update(task, completed=sent)
        progress.update(task, completed=sent)
        remaining = producer.flush(timeout_s)
    if remaining or failures:
        raise SinkError(
            f"Kafka topic {name} at {kafka.bootstrap_servers}: {remaining} of {sent} historian "
            f"record(s) unsent after {timeout_s:g} s, {len(failures)} refused ({failures[:3]}).",
            hint="Check `plantlake status` for the broker, then run the backfill again (the same "
            "day, it sends the same readings, which silver deduplicates).",
        )
    return sent
