"""reference.units: every unit the plant sends converts to its canonical unit with pint's factors."""

from functools import cache

import pytest

from plantlake.core.units import ALIASES, quantity_of, registry
from plantlake.pipelines.transforms.unit_conversion import CANONICAL_UNITS, unece_units, unit_rows
from plantlake.simulator.plant import build_plant


@cache
def _by_unit() -> dict[str, dict]:
    return {row["unit"]: row for row in unit_rows()}


def _convert(unit: str, value: float) -> float:
    row = _by_unit()[unit]
    return value * row["scale"] + row["offset"]


def test_every_plant_unit_has_a_row_with_the_canonical_unit_of_its_quantity():
    rows = _by_unit()
    for asset in build_plant(7).assets:
        for sensor in asset.sensors:
            row = rows[sensor.unit]
            assert row["quantity"] == sensor.quantity
            assert row["canonical_unit"] == CANONICAL_UNITS[sensor.quantity]


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    # 14.5038 psi is 1 bar to the 6 significant digits a datasheet gives; the rest are exact.
    [
        ("degF", 212.0, 100.0),
        ("degF", 32.0, 0.0),
        ("degF", -40.0, -40.0),
        ("K", 373.15, 100.0),
        ("K", 0.0, -273.15),
        ("degC", 55.0, 55.0),
        ("psi", 14.5038, 1.0),
        ("kPa", 250.0, 2.5),
        ("mbar", 1013.25, 1.01325),
        ("L/min", 1000.0, 60.0),
        ("mA", 20.0, 0.02),
        ("in/s", 1.0, 25.4),
        ("", 1.0, 1.0),
    ],
)
def test_affine_conversion_gives_known_values(unit, value, expected):
    rel = 1e-5 if unit == "psi" else 1e-12
    assert _convert(unit, value) == pytest.approx(expected, rel=rel, abs=1e-9)


@pytest.mark.parametrize("unit", [row["unit"] for row in unit_rows() if row["unit"]])
def test_scale_and_offset_agree_with_pint_at_several_points(unit):
    canonical = _by_unit()[unit]["canonical_unit"]
    quantity = registry().Quantity
    spelled = unece_units().get(unit, unit)  # a UNECE code converts as its unit does
    for value in (-50.0, 0.0, 1.0, 212.0, 1e4):
        exact = quantity(value, ALIASES.get(spelled, spelled)).to(ALIASES.get(canonical, canonical))
        assert _convert(unit, value) == pytest.approx(exact.magnitude, rel=1e-12, abs=1e-9)


def test_rows_quantity_is_what_pint_says():
    for row in unit_rows():
        assert quantity_of(row["unit"]) == row["quantity"]


def test_unknown_unit_is_refused_not_guessed():
    with pytest.raises(ValueError, match="furlong_per_fortnight"):
        unit_rows(("furlong_per_fortnight",))
    assert "furlong" not in _by_unit()


# Strings a device can put in a DBIRTH's engUnit or an OPC-UA EngineeringUnits display name.
# Before the unit grammar, the first two raised TokenError out of quantity_of, the nesting a
# RecursionError, and the power tower never returned: one message could crash-loop or hang an
# edge process.
HOSTILE_UNITS = [
    "m/(s",
    "{",
    "(" * 2_000 + "m" + ")" * 2_000,
    "10**10**10",
    "2**2**2**2**2**2",
    "m" * 100_000,
    "m\x00s",
    "__import__('os')",
    "degC; rm -rf /",
]


@pytest.mark.timeout(10, method="thread")
@pytest.mark.parametrize("unit", HOSTILE_UNITS)
def test_a_hostile_unit_string_is_an_unknown_unit_and_returns_at_once(unit):
    assert quantity_of(unit) is None


@pytest.mark.parametrize(
    ("unit", "quantity"),
    [("degC", "temperature"), ("m3/h", "flow"), ("m**3/hour", "flow"), ("mm/s", "vibration"),
     ("kg/(m*s^2)", "pressure"), ("1/min", "speed"), ("bar", "pressure"), ("A", "current"),
     ("m / s", "vibration"), ("kPa", "pressure")],
)  # fmt: skip
def test_units_that_devices_send_are_still_understood(unit, quantity):
    assert quantity_of(unit) == quantity


def test_unknown_unit_strings_do_not_grow_the_cache_without_bound():
    for i in range(5_000):
        quantity_of(f"unit_{i}")
    assert quantity_of.cache_info().currsize <= 1_024
