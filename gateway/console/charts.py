"""Charts as inline SVG, drawn on the server: no script, no style attribute, no outside file.

Shapes carry classes (``chart-bar``, ``chart-rest`` …) that the console's CSS colours, so
the strict content security policy holds. Every label is escaped; a long one is cut in
the drawing and kept whole in the shape's ``<title>``, which screen readers and hovering
both show. Each chart says what it shows in its own ``<title>``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 640
ROW = 26
LABEL_WIDTH = 200
_MAX_LABEL = 26
_ids = itertools.count()


def columns(points: Sequence[tuple[str, float]], *, title: str, every: int = 1, empty: str) -> Markup:
    """Vertical columns, one per point (a day, say), labelled under every ``every``-th one
    counting back from the last."""
    if not any(value for _, value in points):
        return _empty(title, empty)
    height, base, top = 220, 190, 20
    step = (WIDTH - 40) / len(points)
    peak = max(value for _, value in points)
    shapes = [f'<line class="chart-axis" x1="30" y1="{base}" x2="{WIDTH - 10}" y2="{base}"/>']
    for k, (label, value) in enumerate(points):
        tall = (base - top) * value / peak
        x = 30 + k * step
        shapes.append(
            f"<g><title>{escape(label)}: {_number(value)}</title>"
            f'<rect class="chart-bar" x="{x + 1:.1f}" y="{base - tall:.1f}" '
            f'width="{max(step - 2, 1):.1f}" height="{tall:.1f}"/></g>'
        )
        if value:
            shapes.append(
                f'<text class="chart-value" x="{x + step / 2:.1f}" y="{base - tall - 4:.1f}" '
                f'text-anchor="middle">{_number(value)}</text>'
            )
        if (len(points) - 1 - k) % every == 0:
            shapes.append(
                f'<text class="chart-label" x="{x + step / 2:.1f}" y="{base + 16}" '
                f'text-anchor="middle">{escape(_cut(label, 10))}</text>'
            )
    return _svg(title, height, shapes)


def bars(items: Sequence[tuple[str, float]], *, title: str, empty: str) -> Markup:
    """Horizontal bars, one row per labelled value, longest first as given."""
    if not items:
        return _empty(title, empty)
    peak = max(value for _, value in items) or 1
    span = WIDTH - LABEL_WIDTH - 60
    shapes = []
    for k, (label, value) in enumerate(items):
        y = 10 + k * ROW
        shapes.append(
            f"<g><title>{escape(label)}: {_number(value)}</title>"
            f'<text class="chart-label" x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">'
            f"{escape(_cut(label))}</text>"
            f'<rect class="chart-bar" x="{LABEL_WIDTH}" y="{y + 3}" width="{span * value / peak:.1f}" '
            f'height="{ROW - 8}"/>'
            f'<text class="chart-value" x="{LABEL_WIDTH + span * value / peak + 6:.1f}" y="{y + 15}">'
            f"{_number(value)}</text></g>"
        )
    return _svg(title, 20 + len(items) * ROW, shapes)


def shares(items: Sequence[tuple[str, float, float]], *, title: str, empty: str) -> Markup:
    """For each label, how much of a whole is used: a bar of ``used`` out of ``whole``."""
    if not items:
        return _empty(title, empty)
    span = WIDTH - LABEL_WIDTH - 90
    shapes = []
    for k, (label, used, whole) in enumerate(items):
        y = 10 + k * ROW
        part = 0.0 if whole <= 0 else min(used / whole, 1.0)
        shapes.append(
            f"<g><title>{escape(label)}: {_number(used)} / {_number(whole)}</title>"
            f'<text class="chart-label" x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">'
            f"{escape(_cut(label))}</text>"
            f'<rect class="chart-rest" x="{LABEL_WIDTH}" y="{y + 3}" width="{span}" height="{ROW - 8}"/>'
            f'<rect class="chart-bar{" chart-full" if part >= 0.9 else ""}" x="{LABEL_WIDTH}" y="{y + 3}" '
            f'width="{span * part:.1f}" height="{ROW - 8}"/>'
            f'<text class="chart-value" x="{LABEL_WIDTH + span + 6}" y="{y + 15}">{part:.0%}</text></g>'
        )
    return _svg(title, 20 + len(items) * ROW, shapes)


def _svg(title: str, height: int, shapes: list[str]) -> Markup:
    ident = f"chart-{next(_ids)}"
    # Every label and title in the shapes was escaped; the rest are numbers and fixed text.
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{ident}" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="{ident}">{escape(title)}</title>'
        + "".join(shapes)
        + "</svg>"
    )


def _empty(title: str, empty: str) -> Markup:
    return _svg(
        title,
        40,
        [f'<text class="chart-label" x="{WIDTH / 2}" y="25" text-anchor="middle">{escape(empty)}</text>'],
    )


def _cut(label: str, limit: int = _MAX_LABEL) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"
