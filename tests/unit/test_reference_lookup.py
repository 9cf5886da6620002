"""build_reference takes the registry's validity as the hot path reads it through delta-rs (epoch
milliseconds) and as Spark and the simulator hand it (datetimes; naive ones are UTC)."""

import datetime as dt

import pytest

from plantlake.pipelines.transforms.reading_checks import build_reference

UNITS = [{"unit": "degF", "quantity": "temperature", "canonical_unit": "degC",
          "scale": 5 / 9, "offset": -160 / 9}]  # fmt: skip
FROM_MS, TO_MS = 1_767_225_600_000, 1_767_312_000_000  # 2026-01-01 and 01-02, 00:00 UTC


def _registry(valid_from, valid_to):
    return [{"asset": "pump-01", "sensor": "bearing_temp", "asset_class": "pump",
             "quantity": "temperature", "valid_from": valid_from, "valid_to": valid_to}]  # fmt: skip


@pytest.mark.parametrize(
    ("valid_from", "valid_to"),
    [
        (FROM_MS, TO_MS),
        (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 2, tzinfo=dt.UTC)),
        (dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)),  # naive: UTC, as Spark writes
    ],
)
def test_validity_is_epoch_milliseconds_whatever_form_it_came_in(valid_from, valid_to):
    reference = build_reference(UNITS, _registry(valid_from, valid_to))
    (row,) = reference.registry[("pump-01", "bearing_temp")]
    assert (row.valid_from_ms, row.valid_to_ms) == (FROM_MS, TO_MS)
    assert reference.units["degF"].canonical == "degC"


def test_an_open_registry_row_has_no_end():
    (row,) = build_reference(UNITS, _registry(FROM_MS, None)).registry[("pump-01", "bearing_temp")]
    assert row.valid_to_ms is None
