"""Units: which physical quantity a unit measures, by pint's dimensionality (shared by layers)."""

from __future__ import annotations

import re
from functools import cache, lru_cache

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
# Every quantity a registry entry may name: the measured ones above, "state" (no unit), and the
# unitless edge window features (crest factor is a ratio, FFT bands an energy).
KNOWN_QUANTITIES: tuple[str, ...] = (*_QUANTITIES.values(), "state", "ratio", "energy")


@cache
def registry() -> pint.UnitRegistry:
    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


# The grammar of the unit strings devices send (OPC-UA EngineeringUnits, Sparkplug engUnit,
# Modbus maps): symbols with an optional small integer power, joined by * or / (or a space),
# with one level of parentheses. pint's own parser evaluates arbitrary expressions, and strings
# from a device must never reach it unchecked: unbalanced brackets raise TokenError, deep
# nesting RecursionError, and a power tower such as 10**10**10 does not return.
MAX_UNIT_LENGTH = 40
_SYMBOL = r"(?:[^\W\d]|[°%])+\d?|1"
_TERM = rf"(?:{_SYMBOL})(?:(?:\*\*|\^)-?\d)?"
_PRODUCT = rf"{_TERM}(?:\s*[*/]\s*{_TERM}|\s+{_TERM})*"
_FACTOR = rf"(?:{_TERM}|\({_PRODUCT}\))"
_UNIT = re.compile(rf"{_FACTOR}(?:\s*[*/]\s*{_FACTOR}|\s+{_FACTOR})*")


def is_unit_syntax(unit: str) -> bool:
    """Whether a unit string is short and in the grammar above, so pint may parse it."""
    return len(unit) <= MAX_UNIT_LENGTH and _UNIT.fullmatch(unit) is not None


# Bounded: a device can send any number of distinct strings.
@lru_cache(maxsize=1_024)
def quantity_of(unit: str | None) -> str | None:
    """The quantity a unit measures (`"psi"` -> `"pressure"`, the UNECE code `"PS"` too);
    `"state"` for no unit; None if unknown, including any string outside the unit grammar."""
    if not unit:
        return "state"
    # A UNECE Rec. 20 code (a Modbus map's or a Sparkplug engUnit's "FAH") measures what its unit
    # does; a code with no pint unit measures nothing plantlake knows. Imported here: the code
    # table module builds on this one.
    from plantlake.core import unece

    if unece.by_code(unit) is not None:
        mapped = unece.unit_from_code(unit)
        return None if mapped is None else quantity_of(mapped)
    name = ALIASES.get(unit, unit)
    if not is_unit_syntax(name):
        return None
    try:
        parsed = registry().parse_units(name)
    except Exception:  # noqa: BLE001 - any failure of pint on a device's string: unknown unit
        return None
    return _QUANTITIES.get(str(parsed.dimensionality))
