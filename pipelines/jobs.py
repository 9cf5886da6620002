"""Entry points for the pipeline layers: `plantlake pipeline run LAYER` and spark-submit scripts."""

from __future__ import annotations

import time

from rich.console import Console

from plantlake.config import Settings
from plantlake.errors import ConfigError

LAYERS = ("bronze",)


def run_layer(settings: Settings, layer: str, *, once: bool, console: Console) -> None:
    """Start one layer's query and wait for it (until done with `once`, else until stopped)."""
    from plantlake.pipelines import bronze
    from plantlake.spark import get_spark

    runners = {"bronze": bronze.run}
    if layer not in runners:
        raise ConfigError(f"Unknown pipeline layer {layer!r}; known: {list(LAYERS)}.")
    spark = get_spark(settings, app_name=f"plantlake-{layer}")
    started = time.monotonic()
    query = runners[layer](spark, settings, once=once)
    console.print(f"{layer}: query {query.name} started ({'once' if once else 'continuous'})")
    query.awaitTermination()
    progress = query.lastProgress or {}
    console.print(f"{layer}: done in {time.monotonic() - started:.1f}s; "
                  f"last batch read {progress.get('numInputRows', 0)} rows")  # fmt: skip
