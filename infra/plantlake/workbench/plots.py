"""Plots drawn on the server as SVG with matplotlib (workbench layer): a sensor around one
quarantined reading, with the failed rules' limits. No pyplot: figures are local to a call, so
requests served on several threads never share one."""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # never a GUI backend in a server process

import numpy as np  # noqa: E402
from matplotlib import dates as mdates  # noqa: E402 - after choosing the backend
from matplotlib.figure import Figure  # noqa: E402

from plantlake.workbench.quarantine_views import Limit  # noqa: E402

_COLORS = {
    "telemetry": "#1f5f8b",
    "quarantined": "#d08c00",
    "reading": "#c0392b",
    "limit": "#7f1d1d",
}

Point = tuple[int, float]  # (event_time_ms, value in the plot's unit)


def _x(times_ms: Sequence[int]) -> np.ndarray:
    """Epoch milliseconds as matplotlib's date numbers (days), for a UTC time axis."""
    return np.asarray(
        mdates.date2num([dt.datetime.fromtimestamp(t / 1000, tz=dt.UTC) for t in times_ms])
    )


def sensor_window_svg(
    *,
    telemetry: Sequence[Point],
    quarantined: Sequence[Point],
    reading: Point | None,
    center_ms: int,
    half_width_ms: int,
    limits: Sequence[Limit],
    unit: str,
    title: str,
) -> str:
    """SVG of one sensor from center - half_width to center + half_width: silver.telemetry's
    values as a line, other quarantined readings as hollow markers, the reading under review
    as a filled marker (None: its value could not be converted to `unit`), and each limit as a
    dashed horizontal line labelled with its rule."""
    # Same input, same SVG bytes: matplotlib salts its element ids randomly otherwise.
    with matplotlib.rc_context(
        {"svg.hashsalt": "plantlake", "svg.fonttype": "none", "font.size": 9}
    ):
        fig = Figure(figsize=(8.0, 3.2), dpi=96, layout="constrained")
        ax = fig.add_subplot()
        if telemetry:
            ax.plot(_x([t for t, _ in telemetry]), [v for _, v in telemetry], color=_COLORS["telemetry"],
                    linewidth=1.2, marker=".", markersize=3, label="silver.telemetry")  # fmt: skip
        if quarantined:
            ax.scatter(_x([t for t, _ in quarantined]), [v for _, v in quarantined], s=28,
                       facecolors="none", edgecolors=_COLORS["quarantined"],
                       label="other quarantined")  # fmt: skip
        if reading is not None:
            ax.scatter(_x([reading[0]]), [reading[1]], s=60, color=_COLORS["reading"],
                       marker="D", zorder=5, label="this reading")  # fmt: skip
        left, center, right = _x([center_ms - half_width_ms, center_ms, center_ms + half_width_ms])
        ax.axvline(center, color=_COLORS["reading"], linewidth=0.8, alpha=0.4)
        for limit in limits:
            ax.axhline(limit.value, color=_COLORS["limit"], linestyle="--", linewidth=1)
            ax.annotate(f"{limit.rule} {limit.bound} {limit.value:g}", xy=(0, limit.value),
                        xycoords=("axes fraction", "data"), xytext=(4, 2),
                        textcoords="offset points", color=_COLORS["limit"], fontsize=8)  # fmt: skip
        ax.set_xlim(left, right)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=dt.UTC))
        ax.set_xlabel("event time (UTC)")
        ax.set_ylabel(unit or "value")
        ax.set_title(title, loc="left")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def svg_data_uri(svg: str) -> str:
    """The SVG as a data: URI for an <img>: an inline <svg> would need the page's CSP to allow
    inline styles (matplotlib styles every element), an image document does not."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
