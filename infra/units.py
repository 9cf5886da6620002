"""Units: which physical quantity a unit measures, by pint's dimensionality (shared by layers)."""

from __future__ import annotations

from functools import cache

import pint

# Units plant devices send that pint spells differently.
ALIASES = {
    "degC": "degree_Celsius",
    "degF": "degree_Fahrenheit",
    "m3/h": "m**3/hour",
    "rpm": "revolution/minute",
}

# Dimensionality -> quantity name, for the quantities plantlake knows.
_QUANTITIES = {
    "[temperature]": "temperature",
    "[mass] / [length] / [time] ** 2": "pressure",
    "[current]": "current",
    "1 / [time]": "speed",
    "[length] ** 3 / [time]": "flow",
    "[length] / [time]": "vibration",
}


@cache
def registry() -> pint.UnitRegistry:
    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


@cache
def quantity_of(unit: str | None) -> str | None:
    """The quantity a unit measures (`"psi"` -> `"pressure"`); `"state"` for no unit; None if unknown."""
    if not unit:
        return "state"
    try:
        parsed = registry().parse_units(ALIASES.get(unit, unit))
    except (pint.errors.UndefinedUnitError, AttributeError, TypeError, ValueError, AssertionError):
        return None
    return _QUANTITIES.get(str(parsed.dimensionality))
