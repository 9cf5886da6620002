"""Small SVG line charts drawn on the server: sparklines and a trend with a threshold (workbench
layer, pure geometry; the templates write the SVG elements from these numbers)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Frame:
    """A plot area: x spans [x0, x1] (epoch ms) and y spans [y0, y1] (data units), drawn into a
    `width` x `height` box with `pad` pixels kept free on every side."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: float
    height: float
    pad: float = 2.0

    def x(self, value: float) -> float:
        span = self.x1 - self.x0
        share = (value - self.x0) / span if span > 0 else 1.0
        return round(self.pad + share * (self.width - 2 * self.pad), 1)

    def y(self, value: float) -> float:
        span = self.y1 - self.y0
        # A flat series sits in the middle rather than on an edge.
        share = (value - self.y0) / span if span > 0 else 0.5
        return round(self.height - self.pad - share * (self.height - 2 * self.pad), 1)


def finite_points(points: Iterable[tuple[float, float | None]]) -> list[tuple[float, float]]:
    """The points with a finite y, sorted by x (NaN, None and infinities dropped)."""
    kept = [(float(x), float(y)) for x, y in points if y is not None and math.isfinite(y)]
    return sorted(kept)


def segments(points: Sequence[tuple[float, float]], *, max_gap: float) -> list[list[tuple]]:
    """Split sorted points where consecutive x are more than `max_gap` apart, so a gap in the
    data shows as a gap in the line instead of a straight line across it."""
    runs: list[list[tuple]] = []
    for point in points:
        if runs and point[0] - runs[-1][-1][0] <= max_gap:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def polyline(points: Sequence[tuple[float, float]], frame: Frame) -> str:
    """SVG `points` attribute text ("x,y x,y ...") of data points in the frame."""
    return " ".join(f"{frame.x(x)},{frame.y(y)}" for x, y in points)


@dataclass(frozen=True)
class Sparkline:
    """A sensor's recent trend: one polyline per unbroken run, the last point, the value range."""

    width: int
    height: int
    lines: tuple[str, ...]
    last: tuple[float, float] | None  # pixel position of the newest point
    low: float | None
    high: float | None

    @property
    def empty(self) -> bool:
        return not self.lines


def sparkline(
    points: Iterable[tuple[float, float | None]],
    *,
    start_ms: float,
    end_ms: float,
    width: int = 120,
    height: int = 24,
    max_gap_ms: float = 5 * 60_000,
) -> Sparkline:
    """A sparkline of (epoch ms, value) points over [start_ms, end_ms]: the x axis is the fixed
    time span, so a sensor that stopped reporting ends short of the right edge."""
    kept = [(x, y) for x, y in finite_points(points) if start_ms <= x <= end_ms]
    if not kept:
        return Sparkline(width, height, (), None, None, None)
    low, high = min(y for _, y in kept), max(y for _, y in kept)
    frame = Frame(start_ms, end_ms, low, high, width, height)
    runs = segments(kept, max_gap=max_gap_ms)
    # A lone point has no line; draw it as a zero-length segment the round line cap shows.
    lines = tuple(polyline(run if len(run) > 1 else run * 2, frame) for run in runs)
    newest = kept[-1]
    return Sparkline(width, height, lines, (frame.x(newest[0]), frame.y(newest[1])), low, high)
