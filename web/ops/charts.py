"""Time charts for /ops/ as server-rendered SVG: stacked bars (throughput) and lines (queue depth).

Plain markup written here, so the page loads nothing from other hosts and needs no script. Every
label is escaped; the rest is our own numbers. Times are shown in UTC, as the site keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

#: Pixel geometry shared by both kinds of chart.
WIDTH = 720
HEIGHT = 220
LEFT = 48
RIGHT = 12
TOP = 34
BOTTOM = 26
#: Hour marks along the time axis.
TICK_EVERY = timedelta(hours=3)
#: Two samples further apart than this are not joined by a line: the samples in between are missing.
MAX_GAP = timedelta(minutes=3)


@dataclass(frozen=True)
class Stack:
    """One bar of a stacked bar chart: its start and its parts' values, in the order of the colours."""

    start: datetime
    values: tuple[int, ...]


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    points: Sequence[tuple[datetime, int]]


@dataclass(frozen=True)
class _Frame:
    start: datetime
    end: datetime
    top: int

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        return LEFT + (WIDTH - LEFT - RIGHT) * (at - self.start).total_seconds() / span

    def y(self, value: float) -> float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * value / self.top


def stacked_bars(
    *,
    title: str,
    start: datetime,
    end: datetime,
    step: timedelta,
    stacks: Sequence[Stack],
    legend: Sequence[tuple[str, str]],
) -> SafeString:
    """Bars of `step` each from start to end, each a stack of values drawn in the legend's colours."""
    frame = _Frame(start, end, _nice_top(max((sum(s.values) for s in stacks), default=0)))
    parts = _open(title, frame, legend)
    width = max(1.0, frame.x(start + step) - frame.x(start) - 1)
    for stack in stacks:
        base = 0
        for value, (label, colour) in zip(stack.values, legend, strict=True):
            if value:
                y = frame.y(base + value)
                parts.append(
                    f'<rect x="{frame.x(stack.start):.1f}" y="{y:.1f}" width="{width:.1f}" '
                    f'height="{frame.y(base) - y:.1f}" fill="{colour}"><title>{stack.start:%H:%M} UTC: '
                    f"{value:,} {escape(label)}</title></rect>"
                )
            base += value
    return _close(parts)


def lines(*, title: str, start: datetime, end: datetime, series: Sequence[Line]) -> SafeString:
    """One line per series over time; a gap in the samples breaks its line."""
    values = [value for line in series for _, value in line.points]
    frame = _Frame(start, end, _nice_top(max(values, default=0)))
    parts = _open(title, frame, [(line.label, line.colour) for line in series])
    for line in series:
        for run in _runs(line.points):
            coordinates = " ".join(f"{frame.x(at):.1f},{frame.y(value):.1f}" for at, value in run)
            if len(run) == 1:
                at, value = run[0]
                parts.append(
                    f'<circle cx="{frame.x(at):.1f}" cy="{frame.y(value):.1f}" r="2" fill="{line.colour}"/>'
                )
            else:
                parts.append(
                    f'<polyline points="{coordinates}" fill="none" stroke="{line.colour}" '
                    'stroke-width="1.5"/>'
                )
    return _close(parts)


def _runs(points: Sequence[tuple[datetime, int]]) -> list[list[tuple[datetime, int]]]:
    runs: list[list[tuple[datetime, int]]] = []
    for point in points:
        if runs and point[0] - runs[-1][-1][0] <= MAX_GAP:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def _nice_top(largest: int) -> int:
    """The top of the value axis: the largest value rounded up to 1, 2 or 5 times a power of ten."""
    top = 1
    while top < largest:
        for factor in (2, 5 / 2, 2):
            top = round(top * factor)
            if top >= largest:
                break
    return top


def _open(title: str, frame: _Frame, legend: Sequence[tuple[str, str]]) -> list[str]:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" aria-label="{escape(title)}" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" font-weight="bold" font-size="14">{escape(title)}</text>',
    ]
    x = LEFT
    for label, colour in legend:
        parts.append(
            f'<rect x="{x}" y="20" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="29">{escape(label)}</text>'
        )
        x += 24 + 7 * len(label)
    for value in (0, frame.top // 2, frame.top) if frame.top > 1 else (0, 1):
        y = frame.y(value)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dde2e7"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:,}</text>'
        )
    tick = frame.start.replace(minute=0, second=0, microsecond=0)
    while tick <= frame.end:
        if tick >= frame.start and tick.hour % (TICK_EVERY.seconds // 3600) == 0:
            parts.append(
                f'<text x="{frame.x(tick):.1f}" y="{HEIGHT - 8}" text-anchor="middle">{tick:%H:%M}</text>'
            )
        tick += timedelta(hours=1)
    return parts


def _close(parts: list[str]) -> SafeString:
    parts.append("</svg>")
    # Safe: every label and the title went through escape() above; the rest is our own numbers.
    return mark_safe("".join(parts))  # noqa: S308
