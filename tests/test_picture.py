"""Pictures of regression fits (Pillow only)."""

import numpy as np
import pytest

from supervised_reptile.picture import COLOURS, OTHER_COLOURS, Fit, draw_fits


def test_picture_draws_every_curve():
    grid = np.linspace(-5, 5, 50)
    fit = Fit(grid, np.sin(grid), 0 * grid, 2 * np.sin(grid), grid[:5], np.sin(grid[:5]))
    image = draw_fits([fit, fit], size=(100, 80))
    assert image.shape == (100, 200, 3) and image.dtype == np.uint8
    pixels = {tuple(p) for p in image.reshape(-1, 3)}
    assert all(colour in pixels for colour in COLOURS.values())
    with pytest.raises(ValueError, match="at least one"):
        draw_fits([])


def test_other_runs_fits_are_drawn_and_named_in_the_legend():
    grid = np.linspace(-5, 5, 50)
    fit = Fit(grid, np.sin(grid), 0 * grid, np.sin(grid), grid[:5], np.sin(grid[:5]),
              (("oracle", np.cos(grid)), ("pretrained", 0.5 * grid)))
    pixels = {tuple(p) for p in draw_fits([fit], size=(100, 80)).reshape(-1, 3)}
    assert OTHER_COLOURS[0] in pixels and OTHER_COLOURS[1] in pixels
    assert OTHER_COLOURS[2] not in pixels
