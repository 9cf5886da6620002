from plantlake.app.demo import demo_readings
from plantlake.core.contracts import TABLES, is_epoch_ms, record_errors


def _good() -> dict:
    return next(demo_readings("t", count=1, start_ms=1_700_000_000_000))


def test_demo_readings_are_canonical():
    assert all(record_errors(r) == [] for r in demo_readings("t", count=20, start_ms=0))


def test_missing_wrong_type_and_unknown_fields_are_named():
    record = _good() | {"asset": None, "value": "12.5", "colour": "red"}
    errors = record_errors(record)
    assert "asset is missing" in errors
    assert "value should be double, got str" in errors
    assert "unknown field 'colour'" in errors


def test_quality_and_schema_version_are_checked():
    assert record_errors(_good() | {"quality": "OK"}) == [
        "quality 'OK' is not one of ('Good', 'Uncertain', 'Bad')"
    ]
    assert record_errors(_good() | {"schema_version": 2}) == ["schema_version 2 is not 1"]


def test_nan_is_allowed_but_infinity_is_not():
    assert record_errors(_good() | {"value": float("nan")}) == []
    assert record_errors(_good() | {"value": float("inf")}) == ["value is infinite"]


def test_every_table_states_key_writer_comment_and_columns():
    for table in TABLES:
        assert table.key and table.writer and table.comment
        # Each column once, as "name type", and the key among them (tests/lake_contract.py
        # compares the tables jobs write with these).
        assert len(set(table.column_names)) == len(table.columns) > 0, table.name
        assert all(len(c.split(" ", 1)) == 2 for c in table.columns), table.name
        assert set(table.key) <= set(table.column_names), table.name


def test_a_time_outside_1970_to_2100_is_no_epoch_millisecond():
    record = next(demo_readings("t", count=1, start_ms=1_767_225_600_000))
    nanos = record["event_time_ms"] * 1_000_000
    assert record_errors(record | {"event_time_ms": nanos}) == [
        f"event_time_ms {nanos} is not an epoch-millisecond time (1970 to 2100)"
    ]
    assert record_errors(record | {"receive_time_ms": -1}) == [
        "receive_time_ms -1 is not an epoch-millisecond time (1970 to 2100)"
    ]
    assert is_epoch_ms(0) and is_epoch_ms(4_102_444_799_999)  # up to 2100-01-01 UTC
    assert not is_epoch_ms(-1) and not is_epoch_ms(4_102_444_800_000)


def test_every_merge_is_keyed_by_its_tables_contract():
    """Issue 9: MERGE conditions come from the contract's keys (TableRef.merge_on), never string
    literals beside the job, so a key changed in the contract changes every writer."""
    import re
    from pathlib import Path

    import plantlake.adapters
    import plantlake.models
    import plantlake.pipelines

    # A condition written out: `.merge(source, "..."` or a `t.col = s.col` term, or built by hand.
    literal = re.compile(r"\.merge\(\s*[\w.()\"']+,\s*f?[\"']|t\.\w+ = s\.\w+|t\.\{\w+\} = s\.")
    found, merges = [], 0
    for package in (plantlake.pipelines, plantlake.models, plantlake.adapters):
        for source in Path(package.__path__[0]).rglob("*.py"):
            text = re.sub(r"\s+", " ", source.read_text())
            merges += text.count(".merge(") + text.count("upsert(")
            found += [f"{source.name}: {m.group(0)}" for m in literal.finditer(text)]
    assert merges >= 7  # the scan reached the writers (Delta's MERGE and every upsert)
    assert not found, found


def test_a_merge_condition_joins_on_every_key_column():
    from plantlake.core.contracts import GOLD_TELEMETRY_1M, GOLD_TELEMETRY_5M

    # Windows are merged on their epoch-ms start, so that is the key the contract states.
    for ref in (GOLD_TELEMETRY_1M, GOLD_TELEMETRY_5M):
        assert ref.key == ("asset", "sensor", "window_start_ms")
        assert ref.merge_on() == (
            "t.asset = s.asset AND t.sensor = s.sensor AND t.window_start_ms = s.window_start_ms"
        )
