"""The hallucination-rate chart as inline SVG: no JavaScript library, readable without scripts, printable."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from html import escape

from chat.reports import RateRow

WIDTH, HEIGHT = 760, 260
PAD_L, PAD_R, PAD_T, PAD_B = 48, 150, 16, 32
COLOURS = ("#2856d8", "#d8572a", "#17803d", "#8e44ad", "#a15c00", "#0f766e")


def _x(day: date, start: date, days: int) -> float:
    return PAD_L + (WIDTH - PAD_L - PAD_R) * ((day - start).days / max(days - 1, 1))


def _y(rate: float) -> float:
    return PAD_T + (HEIGHT - PAD_T - PAD_B) * (1 - rate)


def rate_chart_svg(rows: Sequence[RateRow], *, start: date, end: date) -> str:
    """Daily flagged share per backend and adapter (lines) with its 95% interval (band); one point per day."""
    days = (end - start).days + 1
    series: dict[str, list[RateRow]] = defaultdict(list)
    for row in rows:
        if row.day is not None and row.answers:  # a day of only unscored answers has no rate
            name = row.backend or "unknown"
            series[f"{name} · {row.adapter}" if row.adapter else name].append(row)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="rate-chart" '
        f'aria-label="Hallucination rate per day">',
        "<title>Share of answers flagged as not grounded, per day</title>",
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(tick)
        parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7ee"/>')
        parts.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{int(tick * 100)}%</text>')
    step = max(1, days // 7)
    for i in range(0, days, step):
        day = start + timedelta(days=i)
        parts.append(
            f'<text x="{_x(day, start, days):.1f}" y="{HEIGHT - 10}" font-size="11" text-anchor="middle">{day:%b %d}</text>'
        )
    for n, (backend, points) in enumerate(sorted(series.items())):
        colour = COLOURS[n % len(COLOURS)]
        points.sort(key=lambda r: r.day or start)
        upper = [f"{_x(p.day, start, days):.1f},{_y(p.high):.1f}" for p in points if p.day]
        lower = [f"{_x(p.day, start, days):.1f},{_y(p.low):.1f}" for p in reversed(points) if p.day]
        parts.append(f'<polygon points="{" ".join(upper + lower)}" fill="{colour}" fill-opacity="0.12"/>')
        line = " ".join(f"{_x(p.day, start, days):.1f},{_y(p.rate):.1f}" for p in points if p.day)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for p in points:
            if p.day:
                label = f"{p.day}: {p.flagged}/{p.answers} flagged ({p.rate:.0%}, 95% CI {p.low:.0%}-{p.high:.0%})"
                parts.append(
                    f'<circle cx="{_x(p.day, start, days):.1f}" cy="{_y(p.rate):.1f}" r="3.5" fill="{colour}" '
                    f'data-day="{p.day}" data-rate="{p.rate:.4f}"><title>{escape(label)}</title></circle>'
                )
        legend_y = PAD_T + 16 * n + 8
        parts.append(f'<rect x="{WIDTH - PAD_R + 12}" y="{legend_y - 8}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - PAD_R + 28}" y="{legend_y + 1}" font-size="12">{escape(backend)}</text>')
    if not series:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#5b6475">No scored answers in this period</text>')
    parts.append("</svg>")
    return "".join(parts)
