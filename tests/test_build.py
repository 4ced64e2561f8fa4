"""The one build step: a configuration means the same learner in every command."""

import os
import subprocess
import sys

import pytest

from supervised_reptile import build
from supervised_reptile.algorithms import FOML, MAML, Oracle, Pretrained, Reptile, schedules
from supervised_reptile.config import SINUSOID, Config
from supervised_reptile.optimizers import SGD, Adam


@pytest.mark.parametrize("fields, cls", [
    ({}, Reptile), ({"algorithm": "foml"}, FOML), ({"algorithm": "maml"}, MAML)])
def test_each_algorithm_is_built_with_its_settings(fields, cls):
    algorithm = build.build_algorithm(Config.from_flat(classes=3, learning_rate=0.01,
                                                       maml_inner_lr=0.2, **fields))
    assert type(algorithm) is cls
    assert algorithm.model.output_shape == (None, 3)
    assert isinstance(algorithm.schedule, schedules.Shared)
    if cls is MAML:  # inner SGD with alpha, outer Adam with beta1 0.9
        assert isinstance(algorithm.inner.optimizer, SGD)
        assert algorithm.inner.optimizer.learning_rate == 0.2
        assert algorithm.optimizer.beta_1 == 0.9
    else:  # the original's inner Adam, which is also what a checkpoint saves
        assert algorithm.optimizer is algorithm.inner.optimizer
        assert isinstance(algorithm.optimizer, Adam) and algorithm.optimizer.beta_1 == 0.0


@pytest.mark.parametrize("fields, schedule", [
    ({"inner_state": "per-task"}, schedules.PerTask), ({"parallel_tasks": True}, schedules.AtOnce),
    ({"inner_state": "shared"}, schedules.Shared)])
def test_performance_options_choose_the_schedule(fields, schedule):
    assert isinstance(build.build_algorithm(Config.from_flat(**fields)).schedule, schedule)


def test_sinusoid_learners_regress_transductively_and_the_oracle_sees_the_task():
    for algorithm, cls, inputs in (("reptile", Reptile, 1), ("pretrained", Pretrained, 1),
                                   ("oracle", Oracle, 3)):
        learner = build.build_algorithm(Config.from_flat(dataset=SINUSOID, classes=1,
                                                         algorithm=algorithm))
        assert type(learner) is cls and learner.transductive
        assert learner.model.input_shape == (None, inputs)


def test_maml_like_task_specs_carry_a_query_set():
    config = Config.from_flat(algorithm="pretrained", dataset=SINUSOID, classes=1, shots=10,
                              inner_iters=3)
    train_spec, eval_spec = build.task_specs(config)
    assert (train_spec.num_shots, train_spec.tail_shots, train_spec.batch_size) == (20, 10, 10)
    assert (eval_spec.batch_size, eval_spec.num_batches) == (10, config.eval.eval_iters)


def test_evaluation_tasks_at_once_follow_the_model_and_the_flag():
    assert build.tasks_at_once(Config.from_flat()) == build.TASKS_AT_ONCE["omniglot"] > 1
    assert build.tasks_at_once(Config.from_flat(dataset=SINUSOID)) > 1
    assert build.tasks_at_once(Config.from_flat(dataset="miniimagenet")) == 1
    assert build.tasks_at_once(Config.from_flat(dataset="folder")) == 1
    assert build.tasks_at_once(Config.from_flat(dataset="miniimagenet",
                                                eval_tasks_at_once=4)) == 4


def test_thread_pools_follow_the_model_and_the_flags(tmp_path):
    # Pools are fixed when TensorFlow's runtime starts: each case in a fresh process.
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = ("import sys, tensorflow as tf; from supervised_reptile import build; "
              "from supervised_reptile.config import Config; "
              "build.configure_threads(Config.from_flat(**eval(sys.argv[1]))); "
              "tf.constant(1.0) + 1; t = tf.config.threading; "
              "print(t.get_intra_op_parallelism_threads(), t.get_inter_op_parallelism_threads())")
    cases = [({"dataset": "omniglot"}, build.THREADS["omniglot"]),
             ({"dataset": "miniimagenet"}, (0, 0)),
             ({"dataset": "omniglot", "intra_op_threads": 2, "inter_op_threads": 0}, (2, 0))]
    for fields, expected in cases:
        out = subprocess.run([sys.executable, "-c", script, repr(fields)], capture_output=True,
                             text=True, check=True, cwd=str(tmp_path),
                             env={**os.environ, "PYTHONPATH": repo})
        assert tuple(int(v) for v in out.stdout.split()) == expected, (fields, out.stderr[-500:])


def test_thread_pools_already_started_are_kept_and_an_explicit_request_is_reported():
    import tensorflow as tf
    tf.constant(1.0) + 1  # the runtime has started in this test process
    lines = []
    current = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
    wanted = current[0] + 1
    assert build.configure_threads(Config.from_flat(intra_op_threads=wanted),
                                   lines.append) == current
    assert len(lines) == 1 and f"intra_op_threads` {wanted}" in lines[0]
    assert build.configure_threads(Config.from_flat(), lines.append) == current
    assert len(lines) == 1  # the model's default is not worth a warning
