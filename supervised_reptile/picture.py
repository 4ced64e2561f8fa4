"""Pictures of regression fits, drawn with Pillow alone (no plotting library)."""

from typing import NamedTuple, Sequence

import numpy as np
from PIL import Image, ImageDraw

#: (name, RGB) of each curve, in the legend's order.
COLOURS = {"true": (0, 0, 0), "before adaptation": (70, 110, 230),
           "after adaptation": (220, 40, 40), "support points": (20, 150, 60)}
#: Colours of other runs' adapted fits (`Fit.others`), in order.
OTHER_COLOURS = ((230, 150, 0), (150, 60, 200), (0, 170, 170), (120, 120, 120))


class Fit(NamedTuple):
    """One task's curves, float arrays.

    grid: `[P]` inputs, increasing. true, before, after: `[P]` the true
    function and the predictions before and after adaptation at `grid`.
    support_x, support_y: `[K]` the points adapted on.
    others: `(label, [P] curve)` pairs: other runs' predictions after
      adaptation on the same task (e.g. a baseline beside MAML).
    """

    grid: np.ndarray
    true: np.ndarray
    before: np.ndarray
    after: np.ndarray
    support_x: np.ndarray
    support_y: np.ndarray
    others: tuple = ()


def _panel(fit: Fit, size: tuple[int, int], y_limit: float) -> Image.Image:
    width, height = size
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    lo, hi = float(fit.grid[0]), float(fit.grid[-1])

    def px(x, y):
        y = np.clip(y, -y_limit, y_limit)
        return ((x - lo) / (hi - lo) * (width - 1),
                (1 - (y + y_limit) / (2 * y_limit)) * (height - 1))

    draw.line([px(lo, 0), px(hi, 0)], fill=(200, 200, 200))
    for name, ys in (("true", fit.true), ("before adaptation", fit.before),
                     ("after adaptation", fit.after)):
        draw.line([px(x, y) for x, y in zip(fit.grid, ys)], fill=COLOURS[name], width=2)
    for (_, ys), colour in zip(fit.others, OTHER_COLOURS):
        draw.line([px(x, y) for x, y in zip(fit.grid, ys)], fill=colour, width=2)
    for x, y in zip(fit.support_x, fit.support_y):
        cx, cy = px(x, y)
        draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=COLOURS["support points"])
    draw.rectangle([0, 0, width - 1, height - 1], outline=(120, 120, 120))
    return img


def draw_fits(fits: Sequence[Fit], size: tuple[int, int] = (320, 240),
              y_limit: float = 6.0) -> np.ndarray:
    """Side-by-side panels, one per task, with a legend strip on top.

    Args:
      fits: the tasks to draw.
      size: `(width, height)` of one panel in pixels.
      y_limit: the vertical axis spans `[-y_limit, y_limit]` (values are clipped).

    Returns:
      uint8 `[height + 20, width * len(fits), 3]` RGB image.
    """
    if not fits:
        raise ValueError("draw_fits needs at least one task to draw")
    width, height = size
    canvas = Image.new("RGB", (width * len(fits), height + 20), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 4
    legend = list(COLOURS.items()) + list(zip((label for label, _ in fits[0].others),
                                              OTHER_COLOURS))
    for name, colour in legend:
        draw.rectangle([x, 6, x + 10, 14], fill=colour)
        draw.text((x + 14, 4), name, fill=(0, 0, 0))
        x += 20 + int(draw.textlength(name))
    for i, fit in enumerate(fits):
        canvas.paste(_panel(fit, size, y_limit), (i * width, 20))
    return np.asarray(canvas)


def save_png(image: np.ndarray, path: str) -> None:
    """Writes a uint8 `[H, W, 3]` array as a PNG."""
    Image.fromarray(image).save(path)
