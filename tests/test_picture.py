"""Pictures of regression fits (Pillow only): the written PNG is decoded and its
axes, ticks, titles, legend and curves are found by their pixels.

Every finder below is also run on a blank panel (or on the wrong curve) to
show that it can fail.
"""

import numpy as np
import pytest
from PIL import Image

from supervised_reptile.picture import (COLOURS, OTHER_COLOURS, TICK_LENGTH, Fit, draw_fits,
                                        legend_entries, nice_ticks, plot_area, save_png,
                                        value_range)

SIZE = (400, 360)
LEFT, TOP, RIGHT, BOTTOM = plot_area(SIZE)
GRID = np.linspace(-5, 5, 100)
SUPPORT_X = np.array([-4.5, -1.0, 2.0, 4.0])
# The values span [-3, 3], widened by 5% of the span on each side to [-3.3, 3.3];
# with at most (BOTTOM - TOP) // 30 + 1 = 9 ticks the axis rounds out to [-4, 4]
# in steps of 1.
Y_TICKS = np.arange(-4, 5)
X_TICKS = np.arange(-5, 6)


def _fit(amplitude=3.0, mse_after=0.1, steps=10, others=()):
    return Fit(GRID, amplitude * np.sin(GRID), np.full_like(GRID, -2.0),
               2.5 * np.sin(GRID) + 0.5, SUPPORT_X, amplitude * np.sin(SUPPORT_X), others,
               amplitude=amplitude, phase=0.0, mse_before=4.5, mse_after=mse_after, steps=steps)


ORACLE = 0.4 * GRID


def _png(fits, tmp_path, name="fits.png"):
    """Draws, writes and decodes: `(legend strip, [panels])` as uint8 arrays."""
    path = tmp_path / name
    save_png(draw_fits(fits, size=SIZE), str(path))
    image = np.asarray(Image.open(path).convert("RGB"))
    legend_height = image.shape[0] - SIZE[1]
    panels = [image[legend_height:, i * SIZE[0]:(i + 1) * SIZE[0]] for i in range(len(fits))]
    return image[:legend_height], panels


def _dark(pixels):
    return pixels.max(axis=-1) < 100


def _blank():
    return np.full((SIZE[1], SIZE[0], 3), 255, np.uint8)


def _axis_lines(panel):
    """Columns holding a dark run over the plot's whole height, rows over its whole width."""
    dark = _dark(panel)
    columns = np.flatnonzero(dark[TOP:BOTTOM + 1].all(axis=0))
    rows = np.flatnonzero(dark[:, LEFT:RIGHT + 1].all(axis=1))
    return columns.tolist(), rows.tolist()


def _tick_marks(panel):
    """Columns dark all along below the x axis, rows dark all along left of the
    y axis (within the plot's extent, away from the tick labels)."""
    dark = _dark(panel)
    columns = np.flatnonzero(dark[BOTTOM + 1:BOTTOM + TICK_LENGTH + 1, LEFT:RIGHT + 1]
                             .all(axis=0)) + LEFT
    rows = np.flatnonzero(dark[TOP:BOTTOM + 1, LEFT - TICK_LENGTH:LEFT].all(axis=1)) + TOP
    return columns.tolist(), rows.tolist()


def _longest_run(mask):
    """The longest horizontal run of True in a 2-D mask."""
    best = 0
    for row in mask:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
        if edges.size:
            best = max(best, int((edges[1::2] - edges[::2]).max()))
    return best


def _pixel(x, y, y_range=(-4.0, 4.0)):
    lo, hi = y_range
    return (round(LEFT + (x + 5) / 10 * (RIGHT - LEFT)),
            round(BOTTOM - (y - lo) / (hi - lo) * (BOTTOM - TOP)))


def _along(panel, colour, xs, ys, reach=3):
    """Whether `colour` is within `reach` pixels of each curve point `(x, y)`."""
    for x, y in zip(xs, ys):
        c, r = _pixel(x, y)
        window = panel[r - reach:r + reach + 1, c - 1:c + 2]
        if not np.all(window == colour, axis=-1).any():
            return False
    return True


def test_axes_and_ticks_sit_where_the_data_range_puts_them(tmp_path):
    _, (panel,) = _png([_fit()], tmp_path)
    assert _axis_lines(panel) == ([LEFT], [BOTTOM])
    columns, rows = _tick_marks(panel)
    assert columns == [_pixel(x, 0)[0] for x in X_TICKS]
    assert rows == sorted(_pixel(0, y)[1] for y in Y_TICKS)
    # A label under every x tick, left of every y tick, and the axis names.
    dark = _dark(panel)
    for c in columns:
        assert dark[BOTTOM + TICK_LENGTH + 2:BOTTOM + TICK_LENGTH + 18, c - 8:c + 9].any()
    for r in rows:
        assert dark[r - 7:r + 8, LEFT - TICK_LENGTH - 30:LEFT - TICK_LENGTH - 2].any()
    assert dark[BOTTOM + 26:, (LEFT + RIGHT) // 2 - 8:(LEFT + RIGHT) // 2 + 9].any()
    assert dark[(TOP + BOTTOM) // 2 - 8:(TOP + BOTTOM) // 2 + 9, :20].any()
    # The finders see nothing on a blank panel.
    assert _axis_lines(_blank()) == ([], []) and _tick_marks(_blank()) == ([], [])


def test_tick_values_and_value_range():
    assert nice_ticks(-5, 5, 11).tolist() == X_TICKS.tolist()
    assert nice_ticks(-5, 5, 9).tolist() == [-4, -2, 0, 2, 4]
    assert np.allclose(nice_ticks(0, 0.37, 5), [0, 0.1, 0.2, 0.3])
    assert value_range(np.array([-3.0, 3.0]), 9) == (-4, 4)
    assert value_range(np.array([0.0, 0.0]), 9) == (-1, 1)
    # [0.0185, 0.0515]: steps of 0.01 would need 6 ticks, so 0.02.
    assert value_range(np.array([0.02, 0.05, np.nan]), 5) == pytest.approx((0, 0.06))


def test_each_legend_colour_is_in_the_legend_and_along_its_curve(tmp_path):
    fit = _fit(others=(("oracle (o), after 5 steps", ORACLE),))
    legend, (panel,) = _png([fit], tmp_path)
    curves = {COLOURS["true"]: fit.true, COLOURS["before"]: fit.before,
              COLOURS["after"]: fit.after, OTHER_COLOURS[0]: ORACLE}
    for colour in curves:  # a swatch: a horizontal run no letter makes
        assert _longest_run(np.all(legend == colour, axis=-1)) >= 20, colour
    assert np.all(legend == COLOURS["support"], axis=-1).sum() >= 50  # a dot
    assert _longest_run(np.all(legend == OTHER_COLOURS[1], axis=-1)) == 0
    for colour, ys in curves.items():
        # Points where no other curve (0.3 is ~10 rows: beyond the 3-row reach and
        # the lines' width) or support point is drawn over this one.
        clear = np.all([np.abs(ys - other) > 0.3 for c, other in curves.items() if c != colour],
                       axis=0)
        clear &= np.min(np.abs(GRID[:, None] - SUPPORT_X), axis=1) > 0.5
        assert clear.sum() >= 10
        assert _along(panel, colour, GRID[clear], ys[clear]), colour
        # The same check fails along another curve, or on a blank panel.
        wrong = fit.before if colour != COLOURS["before"] else fit.true
        assert not _along(panel, colour, GRID[clear], wrong[clear])
        assert not _along(_blank(), colour, GRID[clear], ys[clear])
    assert _along(panel, COLOURS["support"], fit.support_x, fit.support_y, reach=1)
    assert OTHER_COLOURS[1] not in {tuple(p) for p in panel.reshape(-1, 3)}


def test_legend_names_every_curve_with_the_step_count(tmp_path):
    fit = _fit(steps=7, others=(("oracle (o), after 5 steps", ORACLE),))
    assert [text for text, _, _ in legend_entries([fit])] == [
        "true function", "meta-initialization (before adaptation)", "after 7 inner steps",
        "4 support points (adapted on)", "oracle (o), after 5 steps"]
    assert "after adaptation" in legend_entries([_fit(steps=None)])[2][0]
    # The step count reaches the pixels; the legend text is dark and inside its box.
    legend_7, _ = _png([fit, fit], tmp_path, "7.png")
    legend_30, _ = _png([fit._replace(steps=30)] * 2, tmp_path, "30.png")
    assert legend_7.shape == legend_30.shape and (legend_7 != legend_30).any()
    assert _dark(legend_7).sum() > 500
    with pytest.raises(ValueError, match="share the inner steps"):
        draw_fits([fit, fit._replace(steps=3)], size=SIZE)


def test_titles_show_each_tasks_amplitude_and_errors(tmp_path):
    _, panels = _png([_fit(3.0), _fit(1.5), _fit(3.0), _fit(3.0, mse_after=0.2)], tmp_path)
    titles = [panel[:TOP - 8] for panel in panels]
    assert all(_dark(title).sum() > 200 for title in titles)
    assert not _dark(_blank()[:TOP - 8]).any()
    assert (titles[0] == titles[2]).all()  # the same task, the same title
    assert (titles[0] != titles[1]).any()  # another amplitude
    assert (titles[0] != titles[3]).any()  # another MSE after adaptation
    # Without the task's numbers the title falls back to its number.
    _, (bare,) = _png([Fit(*_fit()[:6])], tmp_path, "bare.png")
    assert _dark(bare[:TOP - 8]).sum() < _dark(titles[0]).sum()


def test_image_grows_with_the_panels_and_the_legend_fits(tmp_path):
    heights = []
    for n in (1, 2, 3):
        legend, panels = _png([_fit()] * n, tmp_path, f"{n}.png")
        assert legend.shape[1] == n * SIZE[0] and len(panels) == n
        heights.append(legend.shape[0] + SIZE[1])
        # The legend wraps onto more rows rather than running off the image.
        assert not _dark(legend[:, -8:]).any()
    assert heights[0] >= heights[1] >= heights[2]
    with pytest.raises(ValueError, match="at least one"):
        draw_fits([])
    with pytest.raises(ValueError, match="no room"):
        draw_fits([_fit()], size=(100, 80))


def test_broken_curves_are_drawn_in_pieces(tmp_path):
    before = np.where(np.abs(GRID) < 1, np.nan, -2.0)
    _, (panel,) = _png([_fit()._replace(before=before)], tmp_path)
    assert _axis_lines(panel) == ([LEFT], [BOTTOM])
    assert _along(panel, COLOURS["before"], [-3.0, 3.0], [-2.0, -2.0])
    assert not np.all(panel[:, _pixel(0, 0)[0]] == COLOURS["before"], axis=-1).any()
