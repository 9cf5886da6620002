"""The UNECE Recommendation 20 unit codes OPC UA carries, each with its pint unit where one is
certain (core layer: pure lookups over the table shipped in `plantlake/core/data`).

OPC UA EngineeringUnits name a unit by its UNECE common code (`CEL`, `PS`, `MQH`), sent as a UnitId,
the code's ASCII bytes. `by_code` and `by_unit_id` look a unit up; `unit_from_code` gives the unit
string plantlake uses downstream (`degC`, `psi`, `m3/h`, else a pint spelling such as `kg/m**3`).

A code's pint unit is derived, not guessed: its symbol and its name, each rewritten into pint's
syntax, must both pass the bounded unit grammar, both parse, and convert into each other one for
one. pint reads many UNECE symbols as something else (`kt` is a knot, not a kilotonne; `a` a year,
not an are; `R` the gas constant, not a roentgen; `Gal`, the galileo, named "gal", a gallon),
and a unit read wrong is worse than none, so a code whose two readings disagree, or whose
symbol and name are the same word (`rad`, `mil`), stays unmapped, except the few in `_CURATED`,
each checked against its SI value in tests/unit/test_unece.py. `unmapped_codes` lists the rest.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

import pint

from plantlake.core.units import is_unit_syntax, registry

TABLE = "data/unece_rec20.csv"
# Where the table comes from; data/README.md has the details.
SOURCE = (
    "OPC Foundation UNECE_to_OPCUA.csv (UNECE Rec. 20 for OPC UA EUInformation), "
    "as embedded in org.eclipse.milo:milo-sdk-core:1.1.2"
)
_COLUMNS = ["code", "unit_id", "symbol", "name"]

# A unit whose code is in the table but has no pint unit is reported as "UNECE:<code>": outside the
# unit grammar (the colon), so nothing downstream can read it as a unit, and silver's unit rule
# quarantines it with the code in its reason.
UNMAPPED_PREFIX = "UNECE:"

# Codes whose pint spelling is written out: the units plant devices report, and common units whose
# name or symbol pint cannot read ("standard atmosphere", "ounce (avoirdupois)", "y"). Each is
# checked against its SI value in tests/unit/test_unece.py.
_CURATED: dict[str, str] = {
    "CEL": "degC",
    "FAH": "degF",
    "KEL": "K",
    "BAR": "bar",
    "PS": "psi",
    "AMP": "A",
    "C16": "mm/s",
    "MQH": "m**3/h",
    "RPM": "rpm",
    "C62": "1",
    "ATM": "atm",
    "UA": "torr",
    "TNE": "t",
    "ONZ": "oz",
    "SMI": "mile",
    "4H": "um",
    "MWH": "MW*h",
    "P1": "percent",
    "59": "ppm",
    "ANN": "year",
    "MON": "month",
    "WEE": "week",
    "GLL": "gallon",
    "G2": "gallon/min",
}
# Codes that derive cleanly yet mean another unit than pint's: pint's furlong is the US survey one,
# UNECE's (M50) the international 201.168 m.
_DISTRUSTED = frozenset({"M50"})

# How plantlake spells the units its own devices report (`Sensor.unit`), by code. Several codes can
# share a symbol, so a device's unit string finds its code here first.
PLANT_SPELLINGS: dict[str, str] = {
    "CEL": "degC",
    "FAH": "degF",
    "KEL": "K",
    "BAR": "bar",
    "PS": "psi",
    "AMP": "A",
    "C16": "mm/s",
    "MQH": "m3/h",
    "RPM": "rpm",
    "C62": "",  # dimensionless: a running/stopped state
}
_CODE_OF_SPELLING = {spelling: code for code, spelling in PLANT_SPELLINGS.items()}


@dataclass(frozen=True)
class UneceUnit:
    """One row of the table: `symbol` and `name` are what OPC UA publishes as the EUInformation
    DisplayName and Description; `pint` is the unit's pint spelling, None when it has none."""

    code: str
    unit_id: int
    symbol: str
    name: str
    pint: str | None


def unit_id(code: str) -> int:
    """EUInformation.UnitId of a UNECE common code: its ASCII bytes, big-endian (OPC 10000-8
    §5.6.3). Raises ValueError for anything but 1-3 ASCII characters."""
    if not 1 <= len(code) <= 3 or not code.isascii():
        raise ValueError(f"{code!r} is not a UNECE common code (1-3 ASCII characters)")
    return int.from_bytes(code.encode("ascii"), "big")


def parse_table(text: str) -> dict[str, tuple[int, str, str]]:
    """The table's CSV text -> code: (unit_id, symbol, name), in file order. Raises ValueError for
    another header, a repeated code, or a unit_id that is not its code's."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != _COLUMNS:
        raise ValueError(f"UNECE table header is {header!r}, expected {_COLUMNS!r}")
    rows: dict[str, tuple[int, str, str]] = {}
    for line, (code, unit_id_text, symbol, name) in enumerate(reader, start=2):
        if code in rows:
            raise ValueError(f"UNECE table line {line}: code {code!r} appears twice")
        if int(unit_id_text) != unit_id(code):
            raise ValueError(f"UNECE table line {line}: UnitId {unit_id_text} is not {code!r}'s")
        rows[code] = (int(unit_id_text), symbol, name)
    return rows


@cache
def _rows() -> Mapping[str, tuple[int, str, str]]:
    return parse_table(resources.files("plantlake.core").joinpath(TABLE).read_text("utf-8"))


@cache
def _codes_by_unit_id() -> Mapping[int, str]:
    return {row[0]: code for code, row in _rows().items()}


# Symbols: OHM SIGN and the masculine ordinal (the table writes "ºF" for "°F") as pint knows them,
# the micro sign as pint's ASCII prefix, the middle dot as a product, superscripts as powers.
_SYMBOL_CHARS = str.maketrans(
    {"\u2126": "\u03a9", "\u00ba": "\u00b0", "\u00b5": "u", "\u03bc": "u", "\u00b7": "*"}
)
_SUPERSCRIPT = re.compile("⁻?[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
_SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
# A parenthesised word beside another ("ton (US)", "(US) shipping ton", "tex (g/km)") qualifies the
# unit; pint would multiply by it.
_QUALIFIER = re.compile(r"\w\s*\(|\)\s*\w")
# UNECE symbols pint spells otherwise ("r/min", "mm/y", "t/mo").
_SYMBOL_WORDS = {"r": "revolution", "y": "year", "mo": "month", "wk": "week", "Torr": "torr"}
_WORD = re.compile(r"[^\W\d]+")


def _from_symbol(symbol: str) -> str:
    if _QUALIFIER.search(symbol):
        return ""
    text = symbol.translate(_SYMBOL_CHARS)
    text = _SUPERSCRIPT.sub(lambda m: "**" + m.group().translate(_SUPERSCRIPT_DIGITS), text)
    return _WORD.sub(lambda m: _SYMBOL_WORDS.get(m.group(), m.group()), text).strip()


# Names: pint reads "per", "square", "cubic" and "squared" itself; these it does not.
_NAME_REWRITES = (
    (re.compile(r"\s*\[[^\]]*\]"), ""),  # "second [unit of time]"
    (re.compile(r" \(avoirdupois\)"), ""),  # pint's pound and ounce are avoirdupois
    (re.compile(r"\bdegree (Celsius|Fahrenheit|Rankine)\b"), lambda m: "deg" + m.group(1)[0]),
    (re.compile(r"(\w+)-force\b"), r"\1_force"),  # pound-force
    (re.compile(r" - "), " "),  # "volt - ampere"
    (re.compile(r"(\w+) to the fourth power"), r"\1**4"),
)


def _from_name(name: str) -> str:
    for pattern, replacement in _NAME_REWRITES:
        name = pattern.sub(replacement, name).strip()
    if "(" in name:  # "(statute mile)", "(US)", "(international table)": a qualifier
        return ""
    # UNECE's "per" takes everything after it ("metre per second kelvin" is m/(s·K)); pint's
    # takes one word.
    head, per, tail = name.partition(" per ")
    if per and " per " not in tail:
        name = f"{head} / ({tail})"
    elif name.startswith("reciprocal "):
        name = f"1 / ({name.removeprefix('reciprocal ')})"
    return name


def _parse(spelling: str) -> pint.Unit | None:
    if not spelling or not is_unit_syntax(spelling):
        return None
    try:
        return registry().parse_units(spelling)
    except Exception:  # noqa: BLE001 - any failure of pint on a spelling: no unit
        return None


def _same_unit(a: pint.Unit, b: pint.Unit) -> bool:
    try:
        if a.dimensionality != b.dimensionality:
            return False
        # Two magnitudes, so a unit with an offset (degC) cannot pass as another.
        return all(
            math.isclose(registry().Quantity(x, a).to(b).magnitude, x, rel_tol=1e-9)
            for x in (1.0, 10.0)
        )
    except Exception:  # noqa: BLE001 - pint cannot compare them (np/s has no delta_neper)
        return False


def pint_spelling(symbol: str, name: str) -> str | None:
    """The pint spelling of a unit from its UNECE symbol, when the symbol and the name read
    independently as one and the same pint unit; None otherwise. Bounded: nothing reaches pint
    outside the unit grammar."""
    from_symbol, from_name = _from_symbol(symbol), _from_name(name)
    if from_symbol == from_name:  # one word read once is no check ("rad" is not a radian here)
        return None
    a, b = _parse(from_symbol), _parse(from_name)
    if a is None or b is None or not _same_unit(a, b):
        return None
    return from_symbol


@cache
def _unit(code: str) -> UneceUnit:
    unit_id_, symbol, name = _rows()[code]
    if code in _CURATED:
        spelling: str | None = _CURATED[code]
    elif code in _DISTRUSTED:
        spelling = None
    else:
        spelling = pint_spelling(symbol, name)
    return UneceUnit(code, unit_id_, symbol, name, spelling)


def by_code(code: str) -> UneceUnit | None:
    """The unit of a UNECE common code, None for any other string."""
    return _unit(code) if code in _rows() else None


def by_unit_id(unit_id: int) -> UneceUnit | None:
    """The unit an EUInformation.UnitId names, None when no code in the table has it."""
    code = _codes_by_unit_id().get(unit_id)
    return _unit(code) if code is not None else None


def table() -> tuple[UneceUnit, ...]:
    """Every unit of the table, in its order."""
    return tuple(_unit(code) for code in _rows())


def pint_unit(code: str) -> str | None:
    """The pint spelling of a code's unit (`"MQH"` -> `"m**3/h"`); None when the code has none or
    is not in the table."""
    found = by_code(code)
    return found.pint if found is not None else None


def unmapped_codes() -> frozenset[str]:
    """The codes of the table with no pint unit."""
    return frozenset(unit.code for unit in table() if unit.pint is None)


def unit_from_code(code: str) -> str | None:
    """The unit string plantlake uses for a code: its own spelling for the units plant devices
    report (`"CEL"` -> `"degC"`), else the pint spelling; None when the code has no pint unit or
    is not in the table."""
    if code in PLANT_SPELLINGS:
        return PLANT_SPELLINGS[code]
    return pint_unit(code)


def unmapped_unit(code: str) -> str:
    """What stands for the unit of a code with no pint unit: `"UNECE:<code>"`."""
    return f"{UNMAPPED_PREFIX}{code}"


def unmapped_code(unit: str | None) -> str | None:
    """The code in a unit that `unmapped_unit` made (`"UNECE:KTN"` -> `"KTN"`), None for any other
    unit, so silver can name the code when it quarantines the reading."""
    if unit is None or not unit.startswith(UNMAPPED_PREFIX):
        return None
    code = unit.removeprefix(UNMAPPED_PREFIX)
    return code if code in _rows() else None


@cache
def _codes_by_spelling() -> Mapping[str, frozenset[str]]:
    index: dict[str, set[str]] = {}
    for unit in table():
        if unit.pint is None:
            continue
        for spelling in {unit.symbol, unit.pint, unit_from_code(unit.code)}:
            if spelling:
                index.setdefault(spelling, set()).add(unit.code)
    return {spelling: frozenset(codes) for spelling, codes in index.items()}


def code_for_unit(unit: str) -> str | None:
    """The UNECE code a device's unit string stands for: plantlake's own spellings first (`degC` is
    CEL), else the one code with a pint unit whose symbol or pint spelling is exactly `unit`
    (`"kPa"` -> KPA); None when no such code, or several, match."""
    if unit in _CODE_OF_SPELLING:
        return _CODE_OF_SPELLING[unit]
    codes = _codes_by_spelling().get(unit, frozenset())
    return next(iter(codes)) if len(codes) == 1 else None
