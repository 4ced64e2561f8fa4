"""Sinusoid regression: the tasks (plain and with the oracle's inputs)."""


import numpy as np

from supervised_reptile import sinusoid
from supervised_reptile.episodes import TaskSpec


def test_tasks_are_sinusoids_in_range_and_a_function_of_the_seed():
    spec = TaskSpec(1, 10, 10, 3)
    a = list(sinusoid.eval_dataset(spec, seed=3, stream=10, num_tasks=5))
    b = list(sinusoid.eval_dataset(spec, seed=3, stream=10, num_tasks=5))
    c = list(sinusoid.eval_dataset(spec, seed=4, stream=10, num_tasks=5))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.support_images, y.support_images)
    assert not np.allclose(a[0].support_labels, c[0].support_labels)
    for ep in a:
        x, y = ep.support_images.numpy()[:, 0], ep.support_labels.numpy()
        assert np.all((x >= -5) & (x <= 5)) and ep.batches.shape == (3, 10)
        grid, truth = ep.query_images.numpy()[:, 0], ep.query_labels.numpy()
        np.testing.assert_allclose(grid, np.linspace(-5, 5, sinusoid.EVAL_QUERY_POINTS),
                                   atol=1e-6)
        # Recover A and phase from the grid: y = A sin(x - phase) = p sin x + q cos x.
        (p, q), *_ = np.linalg.lstsq(np.stack([np.sin(grid), np.cos(grid)], 1), truth,
                                     rcond=None)
        amplitude, phase = np.hypot(p, q), np.arctan2(-q, p)
        assert 0.1 <= amplitude <= 5.0 and -1e-4 <= phase <= np.pi + 1e-4
        np.testing.assert_allclose(y, amplitude * np.sin(x - phase), atol=1e-4)


def test_maml_training_tasks_hold_a_separate_query_set():
    spec = TaskSpec(1, 10 + 6, 10, 3 + 1, tail_shots=6)  # K=10 support, 6 queries, 3 steps
    tasks = next(iter(sinusoid.train_dataset(spec, seed=0, meta_batch=4)))
    assert tasks.images.shape == (4, 16, 1) and tasks.labels.shape == (4, 16)
    for m in range(4):
        tail = tasks.tail[m].numpy()
        np.testing.assert_array_equal(tail, np.arange(6))
        for row in tasks.batches[m].numpy():  # each step: the whole support set
            np.testing.assert_array_equal(np.sort(row), np.arange(6, 16))


def test_oracle_tasks_carry_amplitude_and_phase():
    spec = TaskSpec(1, 10, 10, 3)
    plain = next(iter(sinusoid.eval_dataset(spec, seed=3, stream=10, num_tasks=1)))
    oracle = next(iter(sinusoid.eval_dataset(spec, 3, 10, 1, oracle=True)))
    assert oracle.support_images.shape == (10, 3) and oracle.query_images.shape[1] == 3
    np.testing.assert_array_equal(oracle.support_images[:, :1], plain.support_images)
    amplitude, phase = oracle.query_images[0, 1], oracle.query_images[0, 2]
    np.testing.assert_allclose(oracle.query_labels,
                               amplitude * np.sin(oracle.query_images[:, 0] - phase), atol=1e-5)
    assert np.all(oracle.support_images[:, 1:] == oracle.query_images[0, 1:])
