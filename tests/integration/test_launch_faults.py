"""Within its first minute the simulated plant gives silver's rules something to catch: `plantlake
simulate opcua sparkplug` and the two edge processes for about 45 s, then bronze and silver once,
and silver.quarantine holds the impossible reading, the NaN reported Good, the stuck sensor (from
its gateway's store-and-forward backlog) and the wrong unit, while silver.dq_metrics counts the
NaN with Bad quality as a quality warning. The demo's rule report, run on the same lake, names no
launch fault as missed.

Topics of the test's own; the lake on file:// under the test's temp dir (the readings are what is
under test, not S3). The simulator runs at 1x: the faults are scheduled in plant seconds."""

import signal
import time

import pytest
from rich.console import Console

from plantlake.adapters.batch_errors import await_query
from plantlake.adapters.delta import read_delta
from plantlake.core.clock import now_ms
from plantlake.core.config import LakeSettings
from plantlake.core.contracts import SILVER_DQ_METRICS, SILVER_QUARANTINE, SILVER_TELEMETRY
from plantlake.ingest.filters import default_window_features
from plantlake.pipelines.jobs import bronze, silver
from plantlake.pipelines.jobs.reference import load_reference
from plantlake.simulator.launch_faults import LaunchFaultKind, launch_faults
from plantlake.simulator.plant import build_plant
from plantlake.simulator.registry import plant_registry_entries
from tests.integration.test_ingest_e2e import edge_env, start_plantlake

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

RUN_S = 45  # the launch faults end 35 s after the launch (the stuck one after the replay)


def _run_plant_and_edges(settings, tmp_path) -> None:
    env = {**edge_env(settings, tmp_path), "PLANTLAKE_SIMULATOR__SPEED": "1"}
    names = ("simulate", "opcua", "sparkplug")
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in names}
    procs = {"simulate": start_plantlake(["simulate", "opcua", "sparkplug"], env, logs["simulate"])}
    try:
        time.sleep(3)  # the device servers bind before their clients connect
        procs |= {n: start_plantlake(["ingest", n], env, logs[n]) for n in ("opcua", "sparkplug")}
        deadline = time.monotonic() + RUN_S
        while time.monotonic() < deadline:
            exited = [n for n, p in procs.items() if p.poll() is not None]
            assert not exited, (tmp_path / f"{exited[0]}.log").read_text()[-3000:]
            time.sleep(1)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = {name: proc.wait(timeout=60) for name, proc in procs.items()}
        for handle in logs.values():
            handle.close()
    report = {n: (tmp_path / f"{n}.log").read_text()[-2000:] for n in names}
    assert all(code == 0 for code in codes.values()), (codes, report)


def test_silver_catches_every_launch_fault_of_the_first_minute(isolated_kafka, spark, tmp_path):
    lake = LakeSettings(root=f"file://{tmp_path}/lake", checkpoint_root=f"file://{tmp_path}/chk")
    settings = isolated_kafka.model_copy(update={"lake": lake})
    plant = build_plant(settings.simulator.seed)
    faults = launch_faults(plant)
    started_ms = now_ms()
    _run_plant_and_edges(settings, tmp_path)

    load_reference(spark, settings, plant_registry_entries(plant, default_window_features()))
    await_query(bronze.run(spark, settings, once=True))
    silver_began_ms = now_ms()
    await_query(silver.run(spark, settings, once=True))

    def held(kind):
        fault = faults.of_kind(kind)
        assert fault is not None, kind
        rows = (
            read_delta(spark, SILVER_QUARANTINE.path(lake))
            .where(f"asset = '{fault.asset}' AND sensor = '{fault.sensor}'")
            .select("value", "unit", "quality", "failed_rules.rule", "failed_rules.reason")
            .collect()
        )
        return fault, rows

    fault, rows = held(LaunchFaultKind.IMPOSSIBLE)
    hot = [r for r in rows if r.value == fault.value]
    assert hot, rows
    # A motor's bearing: both the plausible range and the rotating machines' limit fire.
    assert {"temperature_plausible", "bearing_temperature_rotating"} <= set(hot[0].rule), hot
    nan_good = [r for r in rows if r.value is None and r.quality == "Good"]
    assert nan_good and "temperature_plausible" in nan_good[0].rule, rows

    fault, rows = held(LaunchFaultKind.STUCK)
    stuck = [r for r in rows if "sensor_stuck" in r.rule]
    assert stuck, rows
    assert len({r.value for r in stuck}) == 1
    assert any("stuck at" in reason for reason in stuck[0].reason), stuck

    fault, rows = held(LaunchFaultKind.WRONG_UNIT)
    wrong = [r for r in rows if "unit" in r.rule]
    assert wrong and {r.unit for r in wrong} == {fault.unit}, rows

    fault = faults.of_kind(LaunchFaultKind.NAN_BAD)
    assert fault is not None
    bad = (
        read_delta(spark, SILVER_TELEMETRY.path(lake))
        .where(f"asset = '{fault.asset}' AND sensor = '{fault.sensor}' AND quality = 'Bad'")
        .select("value", "dq_warnings")
        .collect()
    )
    assert bad and all(r.value is None and "quality_good" in r.dq_warnings for r in bad), bad
    warned = (
        read_delta(spark, SILVER_DQ_METRICS.path(lake))
        .where("rule = 'quality_good' AND action = 'warn'")
        .agg({"failed": "sum"})
        .collect()[0][0]
    )
    assert warned and warned >= len(bad)

    # The demo's report on this lake: every rule above in its table, no launch fault missed.
    from plantlake.app.demo_rules import print_rule_report

    console = Console(record=True, width=250)
    print_rule_report(spark, settings, console, started_ms=started_ms,
                      silver_began_ms=silver_began_ms)  # fmt: skip
    text = console.export_text()
    for rule in ("temperature_plausible", "sensor_stuck", "unit", "quality_good"):
        assert rule in text, text
    assert "did not catch" not in text and "caught every fault" in text, text
