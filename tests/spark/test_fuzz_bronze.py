"""Issue 13 fuzz: whatever bytes arrive on bronze's topics (overflowing longs, 1e999, NaN, wrong
types, invalid UTF-8 in keys and values, deep nesting, truncated or empty JSON), bronze lands
every record exactly once, in telemetry, lifecycle or dead letter, and never fails the batch."""

import uuid

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantlake.app.demo import demo_readings
from plantlake.core.config import LakeSettings
from plantlake.core.contracts import BRONZE_DEAD_LETTER, BRONZE_LIFECYCLE, BRONZE_TELEMETRY
from plantlake.core.records import LifecycleEvent, LifecycleKind
from plantlake.pipelines.jobs import bronze
from tests.spark.test_bronze_land import _batch

pytestmark = pytest.mark.spark

T0 = 1_767_225_600_000
GOOD = orjson.dumps(next(iter(demo_readings("fuzz", count=1, start_ms=T0)))).decode()
LIFECYCLE = orjson.dumps(
    LifecycleEvent(LifecycleKind.DEATH, "sparkplug", "gw", T0, T0).to_record()
).decode()
# JSON number and value texts that parsers disagree on or overflow.
HOSTILE = [
    "1e999", "-1e999", "NaN", "Infinity", "9223372036854775808", "-9223372036854775809",
    "18446744073709551616", "1.5", "0.0", "-0", '"text"', "true", "null", "[]", "{}",
    "[" * 3000 + "]" * 3000, '"' + "x" * 100_000 + '"', '"\\ud800"', "1" * 400,
]  # fmt: skip
FIELDS = ["value", "event_time_ms", "receive_time_ms", "asset", "sensor", "quality", "unit",
          "sequence", "schema_version", "kind", "bd_seq"]  # fmt: skip


@st.composite
def payload(draw) -> tuple[str, bytes]:
    key = draw(st.sampled_from(["telemetry"] * 4 + ["lifecycle", "dead_letter"]))
    base = LIFECYCLE if key == "lifecycle" else GOOD
    how = draw(st.sampled_from(["field", "field", "raw", "bytes", "keys", "good"]))
    if how == "good":
        text = base.encode()
    elif how == "field":
        name, value = draw(st.sampled_from(FIELDS)), draw(st.sampled_from(HOSTILE))
        record = orjson.loads(base)
        record.pop(name, None)
        text = orjson.dumps(record)[:-1] + f',"{name}":{value}}}'.encode()
    elif how == "raw":
        text = draw(st.sampled_from([b"", b"null", b"[]", b"[1,2]", b"{", base.encode()[:-3],
                                     b"\xef\xbb\xbf" + base.encode(), base.encode() * 2]))  # fmt: skip
    elif how == "bytes":
        text = draw(st.binary(max_size=300))
    else:  # keys that are not UTF-8, duplicated, or very many
        text = draw(st.sampled_from([
            base.encode()[:-1] + b',"\xff\xfe":1}',
            base.encode()[:-1] + b',"asset":"\xc3\x28"}',
            base.encode()[:-1] + b',"value":2.0}',
            base.encode()[:-1] + b"".join(b',"k%d":%d' % (i, i) for i in range(2000)) + b"}",
        ]))  # fmt: skip
    return key, text


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(payload(), min_size=20, max_size=60))
def test_bronze_lands_every_record_once_whatever_it_is(spark, lake_settings, tmp_path, records):
    lake = LakeSettings(root=f"file://{tmp_path}/{uuid.uuid4().hex}",
                        checkpoint_root=f"file://{tmp_path}/chk")  # fmt: skip
    own = lake_settings.model_copy(update={"lake": lake})
    batch = _batch(spark, own, records)
    bronze.land_batch(batch, own, app_id="fuzz", batch_id=0, existing=set())
    offsets = []
    for ref in (BRONZE_TELEMETRY, BRONZE_LIFECYCLE, BRONZE_DEAD_LETTER):
        rows = spark.read.format("delta").load(ref.path(own.lake)).select("kafka_offset").collect()
        offsets += [r.kafka_offset for r in rows]
    assert sorted(offsets) == list(range(len(records)))  # each record once, in one table
