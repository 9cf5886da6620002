"""How the workbench shows times, ages and numbers to people (workbench layer, pure)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from plantlake.core.clock import utc_text


def to_ms(value: Any) -> int | None:
    """Epoch milliseconds of a lake value: a pandas Timestamp, a datetime (naive means UTC, as
    Delta timestamps are), an epoch-ms number; None for null, NaT and NaN."""
    if value is None:
        return None
    if isinstance(value, datetime):  # pandas.Timestamp is one too
        if value != value:  # NaT
            return None
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) else None


def number(value: Any) -> float | None:
    """A finite float, or None (null, NaN, infinity, not a number)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def text(value: Any) -> str | None:
    """A string cell, or None for null and NaN (pandas fills missing strings with NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def format_age(seconds: float | None) -> str:
    """A duration as people read it: "12 s", "4 min", "2 h 5 min", "3 d 4 h"; "-" when unknown.
    A negative age (a clock ahead of ours) reads "in the future" rather than a minus sign."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 0:
        return "in the future" if seconds < -1 else "0 s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_time(epoch_ms: int | None) -> str:
    """`YYYY-MM-DD HH:MM:SS UTC`, or "-"."""
    return "-" if epoch_ms is None else f"{utc_text(epoch_ms)} UTC"


def format_value(value: float | None, unit: str | None = None) -> str:
    """A reading with up to 4 significant digits and its unit: "72.35 degC", "0.0012 mm/s"."""
    if value is None:
        return "-"
    shown = f"{value:.4g}" if abs(value) < 1e6 else f"{value:.3e}"
    return f"{shown} {unit}" if unit else shown
