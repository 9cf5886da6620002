"""The OPC-UA client's pure parts: gap filling across reconnects, security and deadband settings."""

import random

import pytest
from asyncua import ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from hypothesis import given, settings
from hypothesis import strategies as st

from plantlake.core.errors import ConfigError
from plantlake.core.records import Quality, Reading
from plantlake.ingest.opcua.client import deadband_filter
from plantlake.ingest.opcua.connection import parse_security
from plantlake.ingest.opcua.gapfill import GapFiller


def _r(ms: int, sensor: str = "flow", value: float = 1.0) -> Reading:
    return Reading(
        asset="plant1/line1/pump-02",
        sensor=sensor,
        value=value,
        unit="m3/h",
        quality=Quality.GOOD,
        event_time_ms=ms,
        receive_time_ms=ms,
        source_protocol="opcua",
        source_node="x",
    )


def _times(readings):
    return [r.event_time_ms for r in readings]


def test_live_readings_pass_once_in_order():
    gap = GapFiller()
    assert _times(gap.live([_r(1000), _r(2000)])) == [1000, 2000]
    assert _times(gap.live([_r(2000), _r(3000)])) == [3000]  # a replayed value is dropped
    assert gap.newest("plant1/line1/pump-02", "flow") == 3000


def test_backfill_emits_the_gap_then_the_held_live_values_without_duplicates():
    gap = GapFiller()
    gap.live([_r(1000), _r(2000)])
    gap.begin()
    assert gap.live([_r(6000), _r(7000)]) == []  # held while the history is read
    out = gap.finish([_r(5000), _r(3000), _r(4000), _r(6000), _r(2000)])
    assert _times(out) == [3000, 4000, 5000, 6000, 7000]
    assert gap.restored == 4
    assert not gap.backfilling


def test_an_aborted_backfill_drops_the_held_values_so_the_next_one_reads_them():
    gap = GapFiller()
    gap.live([_r(1000)])
    gap.begin()
    gap.live([_r(5000)])
    assert gap.abort() == 1
    assert gap.newest("plant1/line1/pump-02", "flow") == 1000
    gap.begin()
    assert _times(gap.finish([_r(2000), _r(3000), _r(4000), _r(5000)])) == [2000, 3000, 4000, 5000]


def test_sensors_are_tracked_separately():
    gap = GapFiller()
    out = gap.live([_r(2000, "flow"), _r(1000, "motor_current"), _r(1000, "flow")])
    assert [(r.sensor, r.event_time_ms) for r in out] == [("flow", 2000), ("motor_current", 1000)]


def test_a_source_clock_that_jumps_back_far_starts_over():
    gap = GapFiller(clock_reset_ms=60_000)
    gap.live([_r(1_000_000)])
    assert _times(gap.live([_r(999_000)])) == []  # within the window: a duplicate
    assert _times(gap.live([_r(10_000), _r(11_000)])) == [10_000, 11_000]


@given(
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=0, max_value=60),
    st.integers(min_value=1, max_value=60),
    st.randoms(use_true_random=False),
)
@settings(max_examples=200)
def test_live_plus_history_covers_every_sample_exactly_once_in_order(
    before, outage, after, rnd: random.Random
):
    samples = [(k + 1) * 1000 for k in range(before + outage + after)]
    gap = GapFiller()
    out = gap.live([_r(ms) for ms in samples[:before]])
    gap.begin()
    # Live values after the reconnect arrive in bursts, possibly with replays; history covers
    # from the last received value to some point after the reconnect, out of order.
    live_after = samples[before + outage :]
    replayed = live_after + rnd.sample(live_after, k=min(3, len(live_after)))
    out += gap.live([_r(ms) for ms in replayed[: len(replayed) // 2]])
    end = before + outage + rnd.randint(0, after)
    history = samples[before - 1 : end]
    rnd.shuffle(history)
    out += gap.live([_r(ms) for ms in replayed[len(replayed) // 2 :]])
    out += gap.finish([_r(ms) for ms in history])
    assert _times(out) == samples


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("Basic256Sha256_SignAndEncrypt", ua.MessageSecurityMode.SignAndEncrypt),
        ("Basic256Sha256_Sign", ua.MessageSecurityMode.Sign),
    ],
)
def test_security_settings_name_a_policy_and_a_mode(text, mode):
    assert parse_security(text) == (SecurityPolicyBasic256Sha256, mode)


def test_security_none_means_an_unsecured_channel():
    assert parse_security("none") is None


@pytest.mark.parametrize(
    "text", ["Basic128_SignAndEncrypt", "Basic256Sha256", "Basic256Sha256_Encrypt"]
)
def test_unknown_security_is_a_config_error(text):
    with pytest.raises(ConfigError) as err:
        parse_security(text)
    assert err.value.code == "config"


def test_deadbands_are_absolute_filters_on_the_named_sensors():
    flt = deadband_filter("bearing_temperature", {"bearing_temperature": 0.5})
    assert (flt.DeadbandType, flt.DeadbandValue) == (ua.DeadbandType.Absolute, 0.5)
    assert flt.Trigger == ua.DataChangeTrigger.StatusValue
    assert deadband_filter("flow", {"bearing_temperature": 0.5}) is None
    assert deadband_filter("flow", {"flow": 0.0}) is None


def test_a_seeded_filler_resumes_where_an_earlier_process_stopped():
    gap = GapFiller()
    gap.seed({("plant1/line1/pump-02", "flow"): 2000})
    gap.begin()
    assert gap.live([_r(5000)]) == []
    # History from before the watermark was emitted by the earlier process: not again.
    out = gap.finish([_r(1000), _r(2000), _r(3000), _r(4000)])
    assert [r.event_time_ms for r in out] == [3000, 4000, 5000]
    assert gap.changes() == {("plant1/line1/pump-02", "flow"): 5000}
    assert gap.changes() == {}  # only what moved since
