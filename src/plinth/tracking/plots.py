"""Plots people read instead of tables: loss curves as SVG (for the API and the console)
and as a line of Unicode blocks (for the terminal). No plotting library is needed."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

_BLOCKS = "▁▂▃▄▅▆▇█"
_COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")


def sparkline(values: Sequence[float], width: int = 60) -> str:
    """``values`` resampled to ``width`` columns of block characters (low to high)."""
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return ""
    if len(vals) > width:  # average into width buckets
        buckets = []
        for i in range(width):
            a = i * len(vals) // width
            chunk = vals[a : max(a + 1, (i + 1) * len(vals) // width)]
            buckets.append(sum(chunk) / len(chunk))
        vals = buckets
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    return "".join(_BLOCKS[min(len(_BLOCKS) - 1, int((v - lo) / span * (len(_BLOCKS) - 1) + 0.5))] for v in vals)


def line_chart_svg(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str = "",
    x_label: str = "step",
    y_label: str = "",
    width: int = 640,
    height: int = 320,
) -> str:
    """An SVG line chart of named (x, y) series sharing axes."""
    pts = [(x, y) for s in series.values() for x, y in s if math.isfinite(x) and math.isfinite(y)]
    left, right, top, bottom = 56, 16, 28 if title else 12, 40
    w, h = width - left - right, height - top - bottom
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            'font-family="sans-serif" font-size="11">'
        ),
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        out.append(f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>')
    if not pts:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(out)
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return top + h - (y - y0) / (y1 - y0) * h

    out.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#ccc"/>')
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:.3g}</text>')
        xv = x0 + (x1 - x0) * i / 4
        out.append(f'<text x="{sx(xv):.1f}" y="{top + h + 16}" text-anchor="middle">{xv:.4g}</text>')
    out.append(f'<text x="{left + w / 2}" y="{height - 6}" text-anchor="middle">{html.escape(x_label)}</text>')
    if y_label:
        out.append(
            f'<text x="12" y="{top + h / 2}" text-anchor="middle" transform="rotate(-90 12 {top + h / 2})">{html.escape(y_label)}</text>'
        )
    for i, (name, s) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        good = [(x, y) for x, y in s if math.isfinite(x) and math.isfinite(y)]
        if not good:
            continue
        d = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(good))
        out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        if len(good) == 1:
            out.append(f'<circle cx="{sx(good[0][0]):.1f}" cy="{sy(good[0][1]):.1f}" r="3" fill="{colour}"/>')
        out.append(f'<rect x="{left + 8}" y="{top + 6 + 14 * i}" width="10" height="3" fill="{colour}"/>')
        out.append(f'<text x="{left + 22}" y="{top + 10 + 14 * i}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
