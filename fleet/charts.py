"""Charts drawn on the server as SVG: a line over time and horizontal bars. Templates place
the geometry computed here (no script, nothing fetched from the internet), and each chart's
page shows the same figures in a table beside it, for screen readers and for copying."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 480, 180
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 12, 12, 28


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    path: str  # the line, as an SVG path ("M x y H x V y …": a step line)
    area: str  # the same, closed to the axis, for a light fill
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    dots: list[Tick]  # each recorded point, with its value
    left: int
    right: int
    top: int
    bottom: int


def _nice_max(value: int) -> int:
    """The axis's top: 1, 2, 5 or 10 times a power of ten, at least `value`."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def step_line(
    points: Sequence[tuple[datetime.datetime, int]],
    *,
    start: datetime.datetime,
    end: datetime.datetime,
    y_max: int,
) -> LineChart:
    """A step line of `points` (time, value; sorted) from `start` to `end`: each value holds
    until the next point. Points before `start` start the line at `start`."""
    top = _nice_max(max([y_max, *(v for _, v in points), 1]))
    span = max((end - start).total_seconds(), 1.0)
    left, right = PAD_LEFT, WIDTH - PAD_RIGHT
    upper, lower = PAD_TOP, HEIGHT - PAD_BOTTOM

    def x(at: datetime.datetime) -> float:
        seconds = min(max((at - start).total_seconds(), 0.0), span)
        return round(left + (right - left) * seconds / span, 1)

    def y(value: int) -> float:
        return round(lower - (lower - upper) * value / top, 1)

    path, area = "", ""
    if points:
        first_x = x(points[0][0])
        parts = [f"M {first_x} {y(points[0][1])}"]
        parts += [f"H {x(at)} V {y(value)}" for at, value in points[1:]]
        parts.append(f"H {right}")
        path = " ".join(parts)
        area = f"{path} V {lower} H {first_x} Z"
    y_ticks = [Tick(left - 6, y(v), f"{v:,}") for v in (0, top // 2, top)]
    x_ticks = [Tick(x(at), lower + 16, label) for at, label in _time_ticks(start, end)]
    dots = [Tick(x(at), y(value), f"{value:,}") for at, value in points]
    return LineChart(WIDTH, HEIGHT, path, area, y_ticks, x_ticks, dots, left, right, upper, lower)


def _time_ticks(
    start: datetime.datetime, end: datetime.datetime
) -> list[tuple[datetime.datetime, str]]:
    """About six ticks: whole days over two days or more, whole hours below."""
    span = end - start
    if span >= datetime.timedelta(days=2):
        step, fmt = datetime.timedelta(days=max(1, span.days // 6)), "%b %d"
        first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        hours = max(1, math.ceil(span.total_seconds() / 3600 / 6))
        step, fmt = datetime.timedelta(hours=hours), "%H:%M"
        first = start.replace(minute=0, second=0, microsecond=0)
    ticks, at = [], first
    while at <= end:
        if at >= start:
            ticks.append((at, at.strftime(fmt)))
        at += step
    return ticks


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    y: float
    width: float


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    label_width: int
    bar_height: int


def bars(items: Sequence[tuple[str, int]], *, limit: int = 10) -> BarChart:
    """Horizontal bars for the first `limit` items, longest first as given."""
    shown = list(items)[:limit]
    label_width, bar_height, gap = 170, 18, 6
    room = WIDTH - label_width - 60
    most = max([v for _, v in shown] or [1]) or 1
    placed = [
        Bar(label, value, i * (bar_height + gap), round(room * value / most, 1))
        for i, (label, value) in enumerate(shown)
    ]
    height = max(len(shown) * (bar_height + gap), bar_height)
    return BarChart(WIDTH, height, placed, label_width, bar_height)
