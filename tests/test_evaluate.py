"""Tests for evaluate.py's pure helpers."""

import numpy as np
import pytest

from supervised_reptile.evaluate import accuracy, confidence_interval


def test_accuracy_counts_one_query_per_class():
    assert accuracy(np.array([5, 3, 4]), 5) == pytest.approx(12 / 15)


def test_confidence_interval_matches_the_formula():
    values = np.array([0.2, 0.4, 0.6, 1.0])
    mean, half = confidence_interval(values)
    assert mean == pytest.approx(0.55)
    sd = np.sqrt(((values - 0.55) ** 2).sum() / 3)
    assert half == pytest.approx(1.96 * sd / 2)


def test_confidence_interval_edge_cases():
    assert confidence_interval(np.array([0.7])) == (0.7, 0.0)
    with pytest.raises(ValueError, match="shape"):
        confidence_interval(np.array([]))
