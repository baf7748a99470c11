"""Small SVG charts drawn by hand, so that the report needs no script and no network.

Each function returns one `<svg>` element as text, with a <title> and an aria-label;
every label passes through XML escaping.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

_BAR = "#3b6ea8"
_AXIS = "#555"
_FONT = 'font-family="sans-serif" font-size="11"'


def _svg(title: str, width: int, height: int, body: list[str]) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f"aria-label={quoteattr(title)}>"
    )
    return "\n".join([head, f"<title>{escape(title)}</title>", *body, "</svg>"])


def _nice_max(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is >= value."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    while step > value * 10:
        step /= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def column_chart(
    title: str, labels: Sequence[str], values: Sequence[float], *, y_label: str = ""
) -> str:
    """Vertical bars, one per label, with a y axis from 0; labels under the bars
    are thinned out when there are many."""
    width, height = 720, 260
    left, right, top, bottom = 48, 12, 28, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max(values, default=0))
    body = [
        f'<text x="{left}" y="16" {_FONT} font-weight="bold">{escape(title)}</text>'
    ]
    for i in range(5):
        tick = top_value * i / 4
        y = top + plot_h - plot_h * i / 4
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="#ddd"/><text x="{left - 4}" y="{y + 4:.1f}" {_FONT} '
            f'text-anchor="end">{_number(tick)}</text>'
        )
    count = max(len(values), 1)
    slot = plot_w / count
    every = max(1, round(count / 12))
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        bar_h = plot_h * value / top_value
        x = left + i * slot + slot * 0.1
        body.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - bar_h:.1f}" '
            f'width="{slot * 0.8:.1f}" height="{bar_h:.1f}" fill="{_BAR}">'
            f"<title>{escape(label)}: "
            f"{_number(value)}</title></rect>"
        )
        if i % every == 0:
            cx = left + i * slot + slot / 2
            body.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 14}" {_FONT} '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    body.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" '
        f'y2="{top + plot_h}" stroke="{_AXIS}"/>'
    )
    if y_label:
        body.append(
            f'<text x="{left}" y="{height - 8}" {_FONT} fill="{_AXIS}">'
            f"{escape(y_label)}</text>"
        )
    if not values or not any(values):
        body.append(
            f'<text x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}" {_FONT} '
            'text-anchor="middle" fill="#999">no data in this period</text>'
        )
    return _svg(title, width, height, body)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float]) -> str:
    """Horizontal bars, one row per label, largest first as given."""
    row_h, left, right, top = 20, 200, 60, 28
    width = 720
    height = top + row_h * max(len(values), 1) + 12
    top_value = max(values, default=0) or 1
    plot_w = width - left - right
    body = [f'<text x="8" y="16" {_FONT} font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row_h
        bar_w = plot_w * value / top_value
        shown = label if len(label) <= 30 else label[:29] + "…"
        body.append(
            f'<text x="{left - 6}" y="{y + 14}" {_FONT} text-anchor="end">'
            f"{escape(shown)}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{bar_w:.1f}" height="{row_h - 6}" '
            f'fill="{_BAR}"><title>{escape(label)}: {_number(value)}</title></rect>'
            f'<text x="{left + bar_w + 4:.1f}" y="{y + 14}" {_FONT}>'
            f"{_number(value)}</text>"
        )
    if not values:
        body.append(
            f'<text x="{left}" y="{top + 14}" {_FONT} fill="#999">'
            "no data in this period</text>"
        )
    return _svg(title, width, height, body)
