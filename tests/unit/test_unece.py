"""The UNECE Rec. 20 table: what it holds and where it comes from, and each code's pint unit, right
where there is one and absent where pint would read the unit wrong."""

import math
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantlake.core import unece
from plantlake.core.units import is_unit_syntax, registry

Q = registry().Quantity


def test_the_table_is_the_opc_ua_unece_table_with_its_source_named():
    units = unece.table()
    assert len(units) == 1562
    assert len({u.code for u in units}) == len({u.unit_id for u in units}) == 1562
    readme = resources.files("plantlake.core").joinpath("data/README.md").read_text("utf-8")
    assert "UNECE_to_OPCUA.csv" in unece.SOURCE and "UNECE_to_OPCUA.csv" in readme
    assert "org.eclipse.milo:milo-sdk-core:1.1.2" in unece.SOURCE
    assert "org.eclipse.milo:milo-sdk-core:1.1.2" in readme


@pytest.mark.parametrize(
    ("code", "unit_id", "symbol", "name"),
    # Rows as the OPC Foundation's UNECE_to_OPCUA.csv has them.
    [
        ("CEL", 4408652, "°C", "degree Celsius"),
        ("FAH", 4604232, "°F", "degree Fahrenheit"),
        ("KEL", 4932940, "K", "kelvin"),
        ("PS", 20563, "lbf/in²", "pound-force per square inch"),
        ("C16", 4403510, "mm/s", "millimetre per second"),
        ("MQH", 5067080, "m³/h", "cubic metre per hour"),
        ("RPM", 5394509, "r/min", "revolutions per minute"),
        ("C62", 4404786, "1", "one"),
        ("D62", 4470322, '"', "second [unit of angle]"),
    ],
)
def test_rows_are_read_as_published(code, unit_id, symbol, name):
    found = unece.by_code(code)
    assert (found.unit_id, found.symbol, found.name) == (unit_id, symbol, name)
    assert unece.unit_id(code) == unit_id
    assert unece.by_unit_id(unit_id) == found


def test_every_unit_id_is_its_code_in_ascii_both_ways():
    for unit in unece.table():
        assert unece.unit_id(unit.code) == unit.unit_id
        assert unit.unit_id.to_bytes(3, "big").lstrip(b"\0").decode("ascii") == unit.code


def test_unece_codes_are_one_to_three_ascii_characters():
    for bad in ("ABCD", "", "°C"):
        with pytest.raises(ValueError):
            unece.unit_id(bad)


def test_a_table_with_a_wrong_unit_id_or_header_is_refused():
    with pytest.raises(ValueError, match="not 'CEL'"):
        unece.parse_table("code,unit_id,symbol,name\nCEL,1,°C,degree Celsius\n")
    with pytest.raises(ValueError, match="header"):
        unece.parse_table("UNECECode,UnitId,DisplayName,Description\n")
    assert unece.parse_table("code,unit_id,symbol,name\nKEL,4932940,K,kelvin\n") == {
        "KEL": (4932940, "K", "kelvin")
    }


def test_every_code_has_a_pint_unit_or_is_listed_unmapped_never_both():
    unmapped = unece.unmapped_codes()
    mapped = [unit for unit in unece.table() if unit.code not in unmapped]
    assert all(unit.pint is None for unit in unece.table() if unit.code in unmapped)
    for unit in mapped:
        assert unit.pint is not None and is_unit_syntax(unit.pint), unit
        assert registry().parse_units(unit.pint).dimensionality is not None
    # Pinned, so a change of pint or of the derivation that maps or drops units gets looked at.
    assert (len(mapped), len(unmapped)) == (1117, 445)


# One of the code's unit in the SI unit, by the unit's definition (Rec. 20 gives them rounded).
FACTORS = [
    ("KEL", "K", 1.0),
    ("BAR", "Pa", 1e5),
    ("PS", "Pa", 6894.757293168361),
    ("AMP", "A", 1.0),
    ("RPM", "rad/s", 2 * math.pi / 60),
    ("MQH", "m**3/s", 1 / 3600),
    ("C16", "m/s", 1e-3),
    ("C62", "dimensionless", 1.0),
    ("ATM", "Pa", 101325.0),
    ("UA", "Pa", 101325.0 / 760),
    ("TNE", "kg", 1000.0),
    ("ONZ", "kg", 0.028349523125),
    ("SMI", "m", 1609.344),
    ("4H", "m", 1e-6),
    ("MWH", "J", 3.6e9),
    ("P1", "dimensionless", 0.01),
    ("59", "dimensionless", 1e-6),
    ("ANN", "s", 365.25 * 86400),
    ("MON", "s", 365.25 * 86400 / 12),
    ("WEE", "s", 7 * 86400),
    ("GLL", "m**3", 3.785411784e-3),
    ("G2", "m**3/s", 3.785411784e-3 / 60),
    # Derived, not curated:
    ("MIN", "s", 60.0),
    ("KMH", "m/s", 1 / 3.6),
    ("KPA", "Pa", 1e3),
    ("MBR", "Pa", 100.0),
    ("LTR", "m**3", 1e-3),
    ("L2", "m**3/s", 1e-3 / 60),
    ("KWH", "J", 3.6e6),
    ("OHM", "ohm", 1.0),
    ("B84", "A", 1e-6),
    ("C78", "N", 4.4482216152605),
    ("KMQ", "kg/m**3", 1.0),
    ("H12", "K/s", 1 / 3600),  # degree Celsius per hour: a rate, no offset
    ("N80", "W/(m*K)", 1.0),
    ("J26", "1/K", 1.8),
    ("A48", "K", 5 / 9),
]


@pytest.mark.parametrize(("code", "si_unit", "factor"), FACTORS)
def test_mapped_units_convert_by_their_unece_factor(code, si_unit, factor):
    assert Q(1.0, unece.pint_unit(code)).to(si_unit).magnitude == pytest.approx(factor, rel=1e-9)


def test_every_curated_unit_is_checked_against_its_si_value():
    checked = {code for code, _, _ in FACTORS} | {"CEL", "FAH"}  # the temperatures below
    assert set(unece._CURATED) <= checked


@pytest.mark.parametrize(
    ("code", "value", "celsius"),
    [("CEL", 21.5, 21.5), ("FAH", 212.0, 100.0), ("FAH", 1.0, -155 / 9), ("KEL", 0.0, -273.15)],
)
def test_temperatures_convert_with_their_offset(code, value, celsius):
    assert Q(value, unece.pint_unit(code)).to("degC").magnitude == pytest.approx(celsius)


@pytest.mark.parametrize(
    "code",
    # Symbols pint reads as another unit: kt a knot (kilotonne), a a year (are), R the gas constant
    # (roentgen), Gal a galileo while "gal" is a gallon, ua a microyear (astronomical unit), B a
    # byte (bel), hbar the Dirac constant (hectobar), mcd a microday (millicandela), Gs a
    # gigasecond (gauss); rad and mil are the symbol and the name both, read once; fur is pint's
    # US survey furlong; TQD's symbol km³/d is a thousand million times its name.
    ["KTN", "ARE", "2C", "A76", "A12", "M72", "HBA", "P34", "76", "C80", "M43", "M50", "TQD"],
)
def test_units_pint_would_misread_stay_unmapped(code):
    assert unece.by_code(code) is not None
    assert unece.pint_unit(code) is None and code in unece.unmapped_codes()
    assert unece.unit_from_code(code) is None


def test_plant_units_keep_plantlakes_spelling():
    assert {code: unece.unit_from_code(code) for code in unece.PLANT_SPELLINGS} == (
        unece.PLANT_SPELLINGS
    )
    for code, spelling in unece.PLANT_SPELLINGS.items():
        assert unece.code_for_unit(spelling) == code


def test_other_units_are_found_by_symbol_or_pint_spelling_when_only_one_code_fits():
    assert unece.code_for_unit("kPa") == "KPA"
    assert unece.code_for_unit("m**3/h") == "MQH"
    assert unece.code_for_unit("°C") == "CEL"
    assert unece.unit_from_code("KPA") == "kPa"
    assert unece.code_for_unit("kvar") is None  # three codes share it, none with a pint unit
    assert unece.code_for_unit("furlong/fortnight") is None


def test_unmapped_units_carry_their_code():
    assert unece.unmapped_unit("KTN") == "UNECE:KTN"
    assert unece.unmapped_code("UNECE:KTN") == "KTN"
    assert not is_unit_syntax("UNECE:KTN")  # so silver can never read it as a unit
    assert unece.unmapped_code("UNECE:NOPE") is None
    assert unece.unmapped_code("kt") is None
    assert unece.unmapped_code(None) is None


@pytest.mark.parametrize(
    "hostile",
    ["x" * 100_000, "CEL ", "cel", "(" * 500, "10**10**10", "\x00", "UNECE:CEL", "🌡"],
)
def test_hostile_codes_and_units_find_nothing_without_raising(hostile):
    assert unece.by_code(hostile) is None
    assert unece.pint_unit(hostile) is None
    assert unece.unit_from_code(hostile) is None
    assert unece.code_for_unit(hostile) is None


def test_an_empty_code_is_no_code_while_an_empty_unit_is_a_plant_state():
    assert unece.by_code("") is None and unece.unit_from_code("") is None
    assert unece.code_for_unit("") == "C62"


@given(st.integers())
def test_any_unit_id_is_looked_up_without_raising(unit_id):
    found = unece.by_unit_id(unit_id)
    assert found is None or found.unit_id == unit_id


@given(st.text(max_size=60), st.text(max_size=60))
def test_deriving_a_pint_unit_never_raises_and_stays_in_the_grammar(symbol, name):
    spelling = unece.pint_spelling(symbol, name)
    assert spelling is None or is_unit_syntax(spelling)


def test_reference_units_lists_every_code_of_a_stored_quantity_and_converts_it():
    from plantlake.core.units import quantity_of
    from plantlake.pipelines.transforms.unit_conversion import (
        CANONICAL_UNITS,
        unece_units,
        unit_rows,
    )

    rows = {r["unit"]: r for r in unit_rows()}
    listed = unece_units()
    for entry in unece.table():
        unit = unece.unit_from_code(entry.code)
        if unit is None:
            assert entry.code not in rows and quantity_of(entry.code) is None
            continue
        quantity = quantity_of(unit)
        if entry.code in listed:
            assert rows[entry.code]["quantity"] == quantity == quantity_of(entry.code)
        else:  # a quantity silver does not store, or a speed pint would count in radians
            assert quantity not in CANONICAL_UNITS or quantity in ("speed", "state")
    fah = rows["FAH"]
    assert 212 * fah["scale"] + fah["offset"] == pytest.approx(100.0)
    assert rows["KPA"]["scale"] == pytest.approx(0.01)  # kPa -> bar
    assert "HTZ" not in rows and rows["RPM"]["scale"] == 1.0
