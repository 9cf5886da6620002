"""Spark column helpers the rule kinds share: the value as the rules read it, numbers as a
reason prints them, and the working columns the sequence engine adds before the checks."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

# Prefix of the working columns apply_rules adds and removes.
TMP = "_dq_"
USABLE = f"{TMP}usable"  # a plausible value for comparing: not null/NaN, not Bad, in range
IN_ORDER = f"{TMP}in_order"  # newer than everything carried for the sensor
PREV_VALUE = f"{TMP}prev_value"  # the last usable value before, and its time
PREV_TIME = f"{TMP}prev_time"
PREV_RAW = f"{TMP}prev_raw"  # the last non-null value before
COUNT = f"{TMP}count"  # non-null readings of the sensor so far


def run_start(rule: str) -> str:
    """Event time of the reading that began the current run of rule `rule` (stuck)."""
    return f"{TMP}run_start_{rule}"


def run_first(rule: str) -> str:
    """COUNT of the reading that began the current run of rule `rule`."""
    return f"{TMP}run_first_{rule}"


def g(x: float) -> str:
    """A limit as a person writes it: 250, 0.5, -40."""
    return f"{x:g}"


def num(col: Column) -> Column:
    """A measured number, rounded for reading (a reason is for people; the row has the value)."""
    return F.round(col, 3)


def value() -> Column:
    """The canonical value with NaN as null: Spark orders NaN above every number, so a NaN
    compared with a maximum would otherwise read as "too high"."""
    return F.nanvl(F.col("value"), F.lit(None).cast("double"))


def among(column: str, names: tuple[str, ...]) -> Column:
    """`column in names`; an empty list means every value."""
    return F.col(column).isin(*names) if names else F.lit(True)


def for_asset_class() -> Column:
    """' for a <class>' when the row has an asset class, else null."""
    return F.when(
        F.col("asset_class").isNotNull(), F.concat(F.lit(" for a "), F.col("asset_class"))
    )
