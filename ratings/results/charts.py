"""Server-rendered chart geometry: scores with 95% CI whiskers as inline SVG (no scripts, no CDN)."""

from __future__ import annotations

from .board import Board, CriterionRef

LEFT = 170  # px for model names
WIDTH = 640
ROW = 26
TOP = 24
SCALE_MIN, SCALE_MAX = 1.0, 10.0


def _x(value: float) -> float:
    return round(LEFT + (value - SCALE_MIN) / (SCALE_MAX - SCALE_MIN) * (WIDTH - LEFT - 20), 1)


def chart_for(*, board: Board, criterion: CriterionRef, order: list[int]) -> dict:
    """One horizontal dot-and-whisker chart for a criterion: a row per model, the 1–10 axis below."""
    rows = []
    for n, i in enumerate(order):
        cell = board.scores[criterion.key][i]
        y = TOP + n * ROW
        row: dict = {"name": board.models[i].name, "y": y, "text_y": y + 4, "has": cell.mean is not None}
        if cell.mean is not None:
            lo = cell.ci_low if cell.ci_low is not None else cell.mean
            hi = cell.ci_high if cell.ci_high is not None else cell.mean
            row.update({
                "x": _x(cell.mean), "x_lo": _x(lo), "x_hi": _x(hi),
                "label": f"{cell.mean:.2f} [{(cell.ci_low or cell.mean):.2f}, "
                         f"{(cell.ci_high or cell.mean):.2f}] n={cell.n}",
            })
        rows.append(row)
    height = TOP + len(order) * ROW + 24
    axis_y = height - 22
    ticks = [{"x": _x(v), "label": str(v)} for v in range(1, 11)]
    return {"criterion": criterion, "rows": rows, "width": WIDTH, "height": height, "axis_y": axis_y,
            "tick_label_y": axis_y + 14, "ticks": ticks, "left": LEFT, "right": WIDTH - 20}
