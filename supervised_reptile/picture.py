"""Pictures of regression fits, drawn with Pillow alone (no plotting library).

`draw_fits` draws one panel per task side by side under a legend strip that
spans the whole image. A panel has a two-line title (the task's amplitude and
phase; its query MSE before and after adaptation), a plot area with a left
and a bottom axis, outward tick marks with labels, light grid lines at the
ticks, and the axis names `x` and `y`. The x axis spans the inputs' grid; the
y axis spans the panel's own values (every curve and support point), widened
to the nearest ticks. Text uses Pillow's built-in scalable font
(`ImageFont.load_default(size=...)`) at sizes readable at 100% zoom.
"""

import math
from typing import Callable, NamedTuple, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Role -> RGB of each of this run's curves (Okabe-Ito colours, which stay
#: distinct for colour-blind readers; the true function is black).
COLOURS = {"true": (0, 0, 0), "before": (0, 114, 178), "after": (213, 94, 0),
           "support": (0, 158, 115)}
#: Colours of other runs' adapted fits (`Fit.others`), in order.
OTHER_COLOURS = ((204, 121, 167), (230, 159, 0), (86, 180, 233), (120, 120, 120))
AXIS_COLOUR = (40, 40, 40)
GRID_COLOUR = (228, 228, 228)
TEXT_COLOUR = (0, 0, 0)
#: `(width, height)` of one panel in pixels.
PANEL_SIZE = (400, 360)
#: Font sizes in pixels.
TITLE_SIZE, LEGEND_SIZE, TICK_SIZE, LABEL_SIZE = 15, 14, 12, 14
#: Space around a panel's plot area: room for the title (top), tick labels
#: and axis names (left, bottom).
MARGINS = {"left": 62, "top": 56, "right": 18, "bottom": 48}
TICK_LENGTH = 5
#: The closest two tick marks may be, in pixels (room for a label like "-10").
TICK_SPACING = 30
_LEGEND_ROW = 22


class Fit(NamedTuple):
    """One task's curves (float arrays) and what the panel's title says about it.

    grid: `[P]` inputs, increasing. true, before, after: `[P]` the true
    function and the predictions before and after adaptation at `grid`.
    support_x, support_y: `[K]` the points adapted on.
    others: `(label, [P] curve)` pairs: other runs' predictions after
      adaptation on the same task (e.g. a baseline beside MAML).
    amplitude, phase: the task `y = amplitude * sin(x - phase)`, or None.
    mse_before, mse_after: the query MSE of `before` and `after`, or None.
    steps: inner steps taken from `before` to `after`, or None.
    """

    grid: np.ndarray
    true: np.ndarray
    before: np.ndarray
    after: np.ndarray
    support_x: np.ndarray
    support_y: np.ndarray
    others: tuple = ()
    amplitude: float | None = None
    phase: float | None = None
    mse_before: float | None = None
    mse_after: float | None = None
    steps: int | None = None


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def plot_area(size: tuple[int, int] = PANEL_SIZE) -> tuple[int, int, int, int]:
    """`(left, top, right, bottom)` pixel columns/rows of a panel's plot area:
    the y axis is column `left`, the x axis row `bottom`."""
    width, height = size
    return (MARGINS["left"], MARGINS["top"], width - 1 - MARGINS["right"],
            height - 1 - MARGINS["bottom"])


def _tick_steps(span: float, max_count: int):
    """Candidate tick steps 1, 2, 5 x 10^k, increasing, from below `span / max_count`."""
    power = math.floor(math.log10(span / max_count)) - 1
    while True:
        for mantissa in (1, 2, 5):
            yield mantissa * 10.0 ** power
        power += 1


def nice_ticks(lo: float, hi: float, max_count: int) -> np.ndarray:
    """At most `max_count` (>= 2) round values (multiples of 1, 2 or 5 x 10^k) in `[lo, hi]`."""
    for step in _tick_steps(hi - lo, max_count):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if last - first + 1 <= max_count:
            return np.arange(first, last + 1) * step


def value_range(values: np.ndarray, max_count: int) -> tuple[float, float]:
    """The y axis for `values`: their range, 5% wider, out to a multiple of a
    tick step that leaves at most `max_count` ticks (so both ends are ticks)."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    pad = 0.05 * (hi - lo) if hi > lo else max(1.0, abs(hi))
    lo, hi = lo - pad, hi + pad
    for step in _tick_steps(hi - lo, max_count):
        low, high = math.floor(lo / step) * step, math.ceil(hi / step) * step
        if round((high - low) / step) + 1 <= max_count:
            return low, high


def _label(value: float, ticks: np.ndarray) -> str:
    """`value` with as many decimals as the tick step needs (no "-0")."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{0.0 if abs(value) < step / 2 else value:.{decimals}f}"


def _polylines(points: np.ndarray):
    """Runs of consecutive finite `[n, 2]` points (a NaN breaks the curve)."""
    finite = np.all(np.isfinite(points), axis=1)
    breaks = np.flatnonzero(np.diff(finite.astype(int)) != 0) + 1
    for run in np.split(np.arange(len(points)), breaks):
        if run.size > 1 and finite[run[0]]:
            yield [tuple(p) for p in points[run]]


def _title(fit: Fit, index: int) -> list[str]:
    lines = [f"task {index + 1}" if fit.amplitude is None else
             f"amplitude {fit.amplitude:.2f}, phase {fit.phase:.2f} rad"]
    if fit.mse_before is not None:
        after = "" if fit.steps is None else f" {fit.steps} steps"
        lines.append(f"MSE {fit.mse_before:.3g} before, {fit.mse_after:.3g} after{after}")
    return lines


def _axes(draw: ImageDraw.ImageDraw, size, x_range, y_range) -> Callable:
    """Grid lines, ticks and their labels, axis names; returns the data -> pixel mapping."""
    left, top, right, bottom = plot_area(size)
    (x_lo, x_hi), (y_lo, y_hi) = x_range, y_range

    def px(x, y):
        y = np.clip(y, y_lo, y_hi)
        return (left + (x - x_lo) / (x_hi - x_lo) * (right - left),
                bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top))

    font = _font(TICK_SIZE)
    x_ticks = nice_ticks(x_lo, x_hi, (right - left) // TICK_SPACING + 1)
    for t in x_ticks:
        c = round(px(t, y_lo)[0])
        draw.line([(c, top), (c, bottom)], fill=GRID_COLOUR)
        draw.line([(c, bottom + 1), (c, bottom + TICK_LENGTH)], fill=AXIS_COLOUR)
        draw.text((c, bottom + TICK_LENGTH + 3), _label(t, x_ticks), fill=TEXT_COLOUR,
                  font=font, anchor="mt")
    y_ticks = nice_ticks(y_lo, y_hi, (bottom - top) // TICK_SPACING + 1)
    for t in y_ticks:
        r = round(px(x_lo, t)[1])
        draw.line([(left, r), (right, r)], fill=GRID_COLOUR)
        draw.line([(left - TICK_LENGTH, r), (left - 1, r)], fill=AXIS_COLOUR)
        draw.text((left - TICK_LENGTH - 3, r), _label(t, y_ticks), fill=TEXT_COLOUR,
                  font=font, anchor="rm")
    label_font = _font(LABEL_SIZE)
    draw.text(((left + right) / 2, bottom + TICK_LENGTH + 22), "x", fill=TEXT_COLOUR,
              font=label_font, anchor="mt")
    draw.text((12, (top + bottom) / 2), "y", fill=TEXT_COLOUR, font=label_font, anchor="mm")
    return px


def _panel(fit: Fit, index: int, size: tuple[int, int]) -> Image.Image:
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = plot_area(size)
    # The true curve is wider and drawn first: a good fit covers it but leaves its edges.
    curves = [(COLOURS["true"], fit.true, 3), (COLOURS["before"], fit.before, 2)]
    curves += [(colour, ys, 2) for (_, ys), colour in zip(fit.others, OTHER_COLOURS)]
    curves.append((COLOURS["after"], fit.after, 2))
    values = np.concatenate([np.asarray(ys, np.float64) for _, ys, _ in curves]
                            + [np.asarray(fit.support_y, np.float64)])
    y_range = value_range(values, (bottom - top) // TICK_SPACING + 1)
    px = _axes(draw, size, (float(fit.grid[0]), float(fit.grid[-1])), y_range)
    for colour, ys, width in curves:
        points = np.stack(px(np.asarray(fit.grid, np.float64), np.asarray(ys, np.float64)), 1)
        for line in _polylines(points):
            draw.line(line, fill=colour, width=width, joint="curve")
    # The axes go over the curves, which start and may end on them.
    draw.line([(left, top), (left, bottom)], fill=AXIS_COLOUR)
    draw.line([(left, bottom), (right, bottom)], fill=AXIS_COLOUR)
    for x, y in zip(fit.support_x, fit.support_y):
        cx, cy = px(float(x), float(y))
        draw.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], fill=COLOURS["support"],
                     outline=(255, 255, 255))
    title_font = _font(TITLE_SIZE)
    for row, text in enumerate(_title(fit, index)):
        draw.text(((left + right) / 2, 6 + 20 * row), text, fill=TEXT_COLOUR,
                  font=title_font, anchor="mt")
    return img


def legend_entries(fits: Sequence[Fit]) -> list[tuple[str, tuple, str]]:
    """`(text, colour, "line" or "dot")` of each legend entry, in order."""
    steps = {fit.steps for fit in fits}
    if len(steps) > 1:
        raise ValueError(f"the tasks of one picture must share the inner steps, got {steps}")
    (steps,) = steps
    after = "after adaptation" if steps is None else f"after {steps} inner steps"
    entries = [("true function", COLOURS["true"], "line"),
               ("meta-initialization (before adaptation)", COLOURS["before"], "line"),
               (after, COLOURS["after"], "line"),
               (f"{len(fits[0].support_x)} support points (adapted on)", COLOURS["support"],
                "dot")]
    return entries + [(label, colour, "line")
                      for (label, _), colour in zip(fits[0].others, OTHER_COLOURS)]


def _legend(entries, width: int) -> Image.Image:
    """The legend strip: entries left to right in a box, wrapped to `width`."""
    font, swatch = _font(LEGEND_SIZE), 26
    sizes = [swatch + 6 + math.ceil(font.getlength(text)) for text, _, _ in entries]
    places, x, row = [], 14, 0
    for size in sizes:
        if x > 14 and x + size > width - 14:
            x, row = 14, row + 1
        places.append((x, 12 + row * _LEGEND_ROW))
        x += size + 20
    img = Image.new("RGB", (width, 12 + (row + 1) * _LEGEND_ROW + 10), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    box_right = max(px + size for (px, _), size in zip(places, sizes)) + 8
    draw.rectangle([6, 6, min(box_right, width - 7), img.height - 5], outline=(150, 150, 150))
    for (text, colour, kind), (x, y) in zip(entries, places):
        middle = y + _LEGEND_ROW // 2
        if kind == "dot":
            draw.ellipse([x + 8, middle - 5, x + 18, middle + 5], fill=colour)
        else:
            draw.line([(x, middle), (x + swatch, middle)], fill=colour, width=3)
        draw.text((x + swatch + 6, middle), text, fill=TEXT_COLOUR, font=font, anchor="lm")
    return img


def draw_fits(fits: Sequence[Fit], size: tuple[int, int] = PANEL_SIZE) -> np.ndarray:
    """Side-by-side panels, one per task, under a legend strip (see the module docstring).

    Args:
      fits: the tasks to draw; they share `steps` and the `others` labels.
      size: `(width, height)` of one panel in pixels; the titles need about
        300 x 240, the margins at least 140 x 158.

    Returns:
      uint8 `[legend_height + height, width * len(fits), 3]` RGB image; the
      legend is taller when its entries wrap onto more rows.
    """
    if not fits:
        raise ValueError("draw_fits needs at least one task to draw")
    width, height = size
    left, top, right, bottom = plot_area(size)
    if right - left < 2 * TICK_SPACING or bottom - top < 2 * TICK_SPACING:
        raise ValueError(f"panel size {size} leaves no room for the plot beside the "
                         f"margins {MARGINS}")
    legend = _legend(legend_entries(fits), width * len(fits))
    canvas = Image.new("RGB", (width * len(fits), legend.height + height), (255, 255, 255))
    canvas.paste(legend, (0, 0))
    for i, fit in enumerate(fits):
        canvas.paste(_panel(fit, i, size), (i * width, legend.height))
    return np.asarray(canvas)


def save_png(image: np.ndarray, path: str) -> None:
    """Writes a uint8 `[H, W, 3]` array as a PNG."""
    Image.fromarray(image).save(path)
