"""Server-side SVG charts: plain markup written by our code, so pages load nothing from other hosts.

Every piece of text that reaches the markup is escaped here; callers pass raw labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

#: Pixel geometry of a horizontal bar chart.
WIDTH = 640
BAR_HEIGHT = 22
BAR_GAP = 6
LABEL_WIDTH = 230
VALUE_WIDTH = 70
TITLE_HEIGHT = 30
#: Labels longer than this many characters are shortened with an ellipsis (the full one is a tooltip).
MAX_LABEL_CHARS = 32


@dataclass(frozen=True)
class Bar:
    label: str
    value: int


def horizontal_bar_chart(*, title: str, bars: Sequence[Bar], width: int = WIDTH) -> SafeString:
    """An accessible SVG bar chart; negative values draw as empty bars with their number shown."""
    height = TITLE_HEIGHT + max(len(bars), 1) * (BAR_HEIGHT + BAR_GAP)
    track = width - LABEL_WIDTH - VALUE_WIDTH
    largest = max((bar.value for bar in bars), default=0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="18" class="chart-title" font-weight="bold">{escape(title)}</text>',
    ]
    if not bars:
        parts.append(f'<text x="0" y="{TITLE_HEIGHT + 16}">No data yet.</text>')
    for i, bar in enumerate(bars):
        y = TITLE_HEIGHT + i * (BAR_HEIGHT + BAR_GAP)
        length = round(track * bar.value / largest) if largest > 0 and bar.value > 0 else 0
        label = bar.label if len(bar.label) <= MAX_LABEL_CHARS else bar.label[: MAX_LABEL_CHARS - 1] + "…"
        text_y = y + BAR_HEIGHT - 6
        parts.append(
            f'<g class="bar"><title>{escape(bar.label)}: {bar.value:,}</title>'
            f'<text x="{LABEL_WIDTH - 8}" y="{text_y}" text-anchor="end" font-size="13">'
            f"{escape(label)}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length}" height="{BAR_HEIGHT}" fill="#2557a7"></rect>'
            f'<text x="{LABEL_WIDTH + length + 6}" y="{text_y}" font-size="13">{bar.value:,}</text></g>'
        )
    parts.append("</svg>")
    # Safe: every label and the title went through escape() above; the rest is our own numbers.
    return mark_safe("".join(parts))  # noqa: S308
