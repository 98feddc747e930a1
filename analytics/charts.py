"""Server-rendered SVG charts for the dashboard (no JavaScript): bars and lines."""

from __future__ import annotations

import math
from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#0b57d0", "#b3261e", "#0b6b2f", "#8e4ec6", "#a35200", "#00796b", "#5f6368")


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above `value` (1 for nothing), so an axis reads
    0, 25, 50 rather than 0.00, 0.01, 0.01."""
    if value <= 0:
        return 1
    step = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 5, 10):
        if value <= m * step:
            return m * step
    return 10 * step


def bar_chart(
    *,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    value_text: Sequence[str] | None = None,
    width: int = 640,
    label_width: int = 170,
) -> SafeString:
    """Horizontal bars, one per label, scaled to the largest value."""
    row, left, gap = 26, label_width, 6
    height = row * len(labels) + 30
    top = max([v for v in values if v is not None] + [0]) or 1
    parts = [
        f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=False)):
        y = 20 + i * row
        bar = 0 if value is None else (width - left - 120) * value / top
        text = (value_text[i] if value_text else f"{value}") if value is not None else "–"
        parts.append(
            f'<text x="{left - 8}" y="{y + row / 2}" text-anchor="end" font-size="12" '
            f'dominant-baseline="middle">{escape(label)}</text>'
            f'<rect x="{left}" y="{y + gap / 2}" width="{bar:.1f}" height="{row - gap}" '
            f'fill="{PALETTE[0]}"></rect>'
            f'<text x="{left + bar + 6:.1f}" y="{y + row / 2}" font-size="12" '
            f'dominant-baseline="middle">{escape(text)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated string above is escaped


def line_chart(
    *,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    y_format=str,
    width: int = 640,
    height: int = 260,
) -> SafeString:
    """One polyline per series over shared x positions; None values break nothing (skipped)."""
    left, right, top_pad, bottom = 70, 170, 20, 30
    values = [v for _, ys in series for v in ys if v is not None]
    lo = min(values + [0])
    hi = nice_ceiling(max(values + [0]))
    span = (hi - lo) or 1
    plot_w, plot_h = width - left - right, height - top_pad - bottom

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (plot_w * i / max(1, len(x_labels) - 1))
        return x, top_pad + plot_h * (1 - (v - lo) / span)

    parts = [
        f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" '
        f'y2="{top_pad + plot_h}" stroke="#999"></line>',
    ]
    for value in (lo, (lo + hi) / 2, hi):
        _, y = xy(0, value)
        parts.append(
            f'<text x="{left - 6}" y="{y:.1f}" text-anchor="end" font-size="11">'
            f"{escape(y_format(value))}</text>"
        )
    # At most ~8 labels, counted back from the last so the newest day is always named.
    every = max(1, math.ceil(len(x_labels) / 8))
    for i, label in enumerate(x_labels):
        if (len(x_labels) - 1 - i) % every:
            continue
        x, _ = xy(i, lo)
        parts.append(
            f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" font-size="11">'
            f"{escape(label)}</text>"
        )
    for n, (name, ys) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        points = " ".join(
            f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(ys) if v is not None)
        )
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"></polyline>'
        )
        # A dot per point: a series with one value (one day of sales) is still seen.
        parts.extend(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"></circle>'
            for x, y in (xy(i, v) for i, v in enumerate(ys) if v is not None)
        )
        parts.append(
            f'<text x="{left + plot_w + 10}" y="{top_pad + 14 * n + 8}" font-size="11" '
            f'fill="{color}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated string above is escaped
