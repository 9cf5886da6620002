"""Unit normalization of the silver layer: the reference.units table (from pint) and the transform."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from plantlake.core import unece
from plantlake.core.contracts import REFERENCE_UNITS
from plantlake.core.units import ALIASES, quantity_of, registry

# The canonical unit of each quantity silver stores; "" is the unit of a state (no unit).
CANONICAL_UNITS: dict[str, str] = {
    "temperature": "degC",
    "pressure": "bar",
    "current": "A",
    "speed": "rpm",
    "flow": "m3/h",
    "vibration": "mm/s",
    "state": "",
}

# Quantities of edge window features that carry no unit at all (crest factor, band energies):
# their value passes through unchanged and their canonical unit is null.
UNITLESS_FEATURES: tuple[str, ...] = ("ratio", "energy")

# Every unit a device may declare: what the simulated plant sends plus common alternatives.
# Hz is left out on purpose: pint converts 1 Hz to 9.55 rpm (radians), not to 60 rpm (turns).
ACCEPTED_UNITS: tuple[str, ...] = (
    "degC", "degF", "K",
    "bar", "mbar", "Pa", "kPa", "MPa", "psi",
    "A", "mA",
    "rpm",
    "m3/h", "L/min", "L/s",
    "mm/s", "m/s", "in/s",
    "",
)  # fmt: skip

UNITS_SCHEMA = REFERENCE_UNITS.ddl()


def _converts_as_turns(unit: str) -> bool:
    """Whether a speed unit counts turns: pint takes 1 Hz as 1 rad/s, 9.55 rpm (see above)."""
    return unit == "rpm" or "revolution" in unit


@cache
def unece_units() -> Mapping[str, str]:
    """UNECE Rec. 20 codes and their units, for every code whose unit measures a quantity silver
    stores: {code or unit spelling: the plantlake unit it stands for}. Devices declare either
    (a Modbus map's `unit: FAH`, an engUnit of `kPa`); both get a row in reference.units."""
    found: dict[str, str] = {}
    for entry in unece.table():
        unit = unece.unit_from_code(entry.code)
        quantity = quantity_of(unit) if unit is not None else None
        if unit is None or quantity not in CANONICAL_UNITS or quantity == "state":
            continue
        if quantity == "speed" and not _converts_as_turns(unit):
            continue
        found.setdefault(entry.code, unit)
        found.setdefault(unit, unit)
    return MappingProxyType(found)


def device_units() -> tuple[str, ...]:
    """Every unit string reference.units lists: ACCEPTED_UNITS, then the UNECE codes and units."""
    return tuple(dict.fromkeys((*ACCEPTED_UNITS, *unece_units())))


def _pint_name(unit: str) -> str:
    return ALIASES.get(unit, unit)


def _delta(unit: str) -> str:
    """The difference unit of an offset unit (degF -> delta_degree_Fahrenheit), else itself."""
    name = "delta_" + registry().get_name(unit)
    return name if name in registry() else unit


def conversion(unit: str, canonical: str) -> tuple[float, float]:
    """(scale, offset) with canonical = value * scale + offset, both computed by pint.

    For affine units the scale comes from the difference units (delta_degF -> delta_degC):
    taking it as f(1) - f(0) would lose digits to cancellation.
    """
    if unit == canonical:
        return 1.0, 0.0
    quantity = registry().Quantity
    source, target = _pint_name(unit), _pint_name(canonical)
    offset = float(quantity(0.0, source).to(target).magnitude)
    if offset == 0.0:
        return float(quantity(1.0, source).to(target).magnitude), 0.0
    scale = float(quantity(1.0, _delta(source)).to(_delta(target)).magnitude)
    return scale, offset


def unit_rows(units: tuple[str, ...] | None = None) -> list[dict]:
    """Rows of reference.units: unit, quantity, canonical_unit, scale, offset; `units` defaults
    to `device_units()`.

    Raises ValueError when a unit is unknown to pint or measures no quantity plantlake knows.
    """
    spelled = unece_units()
    rows = []
    for unit in device_units() if units is None else units:
        quantity = quantity_of(unit)
        if quantity not in CANONICAL_UNITS:
            raise ValueError(f"reference.units: {unit!r} measures no known quantity ({quantity})")
        canonical = CANONICAL_UNITS[quantity]
        source = spelled.get(unit, unit)
        scale, offset = conversion(source, canonical) if unit else (1.0, 0.0)
        rows.append(
            {
                "unit": unit,
                "quantity": quantity,
                "canonical_unit": canonical,
                "scale": scale,
                "offset": offset,
            }
        )
    return rows


def _unit_error(unit: Column, unit_given: Column, expected: Column, found: Column) -> Column:
    """Why a reading's unit cannot be normalized, or null when it can."""
    where = F.concat(F.col("asset"), F.lit(" "), F.col("sensor"))
    return (
        F.when(
            unit_given & found.isNull(),
            F.concat(
                F.lit("unit '"),
                unit,
                F.lit("' of "),
                where,
                F.lit(
                    " is not in reference.units: fix the device's unit or add it to "
                    "plantlake.pipelines.transforms.unit_conversion and run `plantlake reference load`"
                ),
            ),
        )  # fmt: skip
        .when(
            ~unit_given & expected.isNotNull() & ~expected.isin("state", *UNITLESS_FEATURES),
            F.concat(
                F.lit("no unit declared, but the registry says "),
                where,
                F.lit(" measures "),
                expected,
            ),
        )  # fmt: skip
        .when(
            unit_given & expected.isNotNull() & (found != expected),
            F.concat(
                F.lit("unit '"),
                unit,
                F.lit("' measures "),
                found,
                F.lit(", but the registry says "),
                where,
                F.lit(" measures "),
                expected,
                F.lit(": check the device's unit or the asset registry"),
            ),
        )  # fmt: skip
    )


def normalize_units(readings: DataFrame, *, units: DataFrame) -> DataFrame:
    """Readings in canonical units, with `quantity`, `source_value`/`source_unit` and `unit_error`.

    Grain in and out: one reading. `readings` has `value`, `unit`, `asset`, `sensor` and, after
    `join_registry`, `registry_quantity` (the quantity the registry expects, null when the
    sensor is unknown; taken as null when the column is absent). `units` is reference.units.
    A unit missing from `units`, or measuring another quantity than the registry's, is not
    guessed: `value`/`unit` become null and `unit_error` says why (null when fine). Unitless
    window features (crest factor, band energies) pass through with a null unit.
    """
    expected = (
        F.col("registry_quantity")
        if "registry_quantity" in readings.columns
        else F.lit(None).cast("string")
    )
    unit_key = F.coalesce(F.col("unit"), F.lit(""))
    ref = units.select(
        F.col("unit").alias("_u_unit"),
        F.col("quantity").alias("_u_quantity"),
        F.col("canonical_unit").alias("_u_canonical"),
        F.col("scale").alias("_u_scale"),
        F.col("offset").alias("_u_offset"),
    )
    joined = readings.join(F.broadcast(ref), unit_key == F.col("_u_unit"), "left")
    unit_given = unit_key != ""
    error = _unit_error(F.col("unit"), unit_given, expected, F.col("_u_quantity"))
    quantity = F.coalesce(expected, F.col("_u_quantity"))
    unitless = ~unit_given & quantity.isin(*UNITLESS_FEATURES)
    return (
        joined.withColumn("unit_error", error)
        .withColumn("source_value", F.col("value"))
        .withColumn("source_unit", F.col("unit"))
        .withColumn("quantity", quantity)
        .withColumn(
            "value",
            F.when(F.col("unit_error").isNotNull(), F.lit(None).cast("double"))
            .when(unitless, F.col("source_value"))
            .otherwise(F.col("source_value") * F.col("_u_scale") + F.col("_u_offset")),
        )
        .withColumn(
            "unit",
            F.when(
                F.col("unit_error").isNotNull() | unitless, F.lit(None).cast("string")
            ).otherwise(F.col("_u_canonical")),
        )
        .drop("_u_unit", "_u_quantity", "_u_canonical", "_u_scale", "_u_offset")
    )
