"""The one build step from a `Config`: data, task specs, model and algorithm.

Used by every command (training, sinusoid, export, benchmarks), so that a
configuration means the same run everywhere.
"""

import json
import os
import time

import keras
import tensorflow as tf

from supervised_reptile import episodes, models, sinusoid, validate
from supervised_reptile.algorithms import FOML, MAML, Algorithm, Oracle, Pretrained, Reptile
from supervised_reptile.config import SINUSOID, Config
from supervised_reptile.data import forms, omniglot, registry, store
from supervised_reptile.optimizers import make_optimizer

#: Algorithms whose inner loop is MAML's (SGD on the whole support set) and
#: whose training tasks carry a query set.
MAML_LIKE = ("maml", "pretrained", "oracle")


#: Dataset -> (intra-op, inter-op) threads when the configuration leaves them
#: None (0: TensorFlow's default). Measured on a 2-core CPU, whole runs against
#: each other (docs/performance.md): small convolutions gain nothing from a
#: second thread per op, and a second core left to the input pipeline and the
#: next op keeps the threads from fighting over the cores.
THREADS = {"omniglot": (1, 2), SINUSOID: (0, 0)}  # every other dataset: (0, 0)

#: Dataset -> evaluation tasks adapted at once when the configuration leaves it
#: None. Stacking amortises the per-op cost of small steps (Omniglot, sinusoid).
#: On Mini-ImageNet a task adapted by itself was faster than a stacked one (its
#: steps fill the cores alone, and the stacked tasks' grouped convolutions have
#: a slow filter gradient); the other datasets use the same pooling network.
TASKS_AT_ONCE = {"omniglot": 16, SINUSOID: 16}  # every other dataset: 1


def configure_threads(config: Config, log_fn=print) -> tuple[int, int]:
    """Sets TensorFlow's thread pools for the run; returns `(intra, inter)`.

    The pools are fixed once TensorFlow's runtime has started; a process that
    already ran TensorFlow keeps its pools (said in one line when the
    configuration asked for others explicitly).
    """
    perf = config.performance
    intra, inter = THREADS.get(config.data.dataset, (0, 0))
    intra = intra if perf.intra_op_threads is None else perf.intra_op_threads
    inter = inter if perf.inter_op_threads is None else perf.inter_op_threads
    threading = tf.config.threading
    if (threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads()) == (intra, inter):
        return intra, inter
    try:
        threading.set_intra_op_parallelism_threads(intra)
        threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # the runtime already started in this process
        if perf.intra_op_threads is not None or perf.inter_op_threads is not None:
            log_fn(f"Warning: TensorFlow already started in this process; its thread pools "
                   f"stay as they are, not `intra_op_threads` {intra} / `inter_op_threads` "
                   f"{inter}")
        return (threading.get_intra_op_parallelism_threads(),
                threading.get_inter_op_parallelism_threads())
    return intra, inter


def tasks_at_once(config: Config) -> int:
    """Evaluation tasks adapted at once: the configuration's, else `TASKS_AT_ONCE`'s."""
    chosen = config.performance.eval_tasks_at_once
    return TASKS_AT_ONCE.get(config.data.dataset, 1) if chosen is None else chosen


def find_form(config: Config) -> forms.Form:
    """The form of the configured image dataset in `data_dir` (`registry.find`)."""
    data = config.data
    return registry.find(data.data_dir, data.dataset, data.image_size, data.channels)


def resolve_data(config: Config) -> Config:
    """The configuration with the image size and channels of a "folder"
    dataset filled in from its images when they were left to inference, so
    that the saved configuration rebuilds the same network."""
    data = config.data
    if data.dataset != "folder" or (data.image_size and data.channels):
        return config
    form = find_form(config)
    return config.replace(image_size=form.image_size, channels=form.channels)


def image_shape(config: Config) -> tuple[int, ...] | None:
    """The image shape of a split dataset's network (None: Omniglot, sinusoid)."""
    data = config.data
    if data.dataset == "folder":
        return (data.image_size, data.image_size, data.channels)
    return registry.IMAGE_SHAPES.get(data.dataset)


def load_samplers(config: Config, log_fn=print) -> dict[str, episodes.Sampler]:
    """Split name -> `episodes.Sampler` for the configured image dataset.

    Images are read from the dataset's decoded store (`data.store`), written
    first if it is missing or stale; a split dataset's pools stay on disk and
    samplers read each task's images from it, while Omniglot's characters
    are split by the run's seed and rotated in memory (`omniglot.split_pool`).
    With `store="off"` splits are decoded and moved into TensorFlow one at a
    time, so at most one split exists twice (NumPy and TensorFlow) at any
    moment: for Mini-ImageNet the images take about 1.3 GB once loaded.
    """
    data = config.data
    on_skip = validate.warn if data.skip_bad_images else None
    if data.dataset == "omniglot":  # its output stays the original's, line for line
        log_fn = _quiet
    began = time.perf_counter()
    form = find_form(config)
    if data.store != "off":
        form = store.ensure(form, data.store or None, on_skip, log_fn)
    if data.dataset == "omniglot":
        train, test = omniglot.split_pool(form.read_split(omniglot.ALL, on_skip), data.data_dir,
                                          data.train_characters, config.run.seed)
        samplers = {"train": episodes.Sampler(train), "test": episodes.Sampler(test)}
    else:
        samplers = {split: episodes.sampler_for(form.read_split(split, on_skip))
                    for split in forms.SPLITS}
    where = f"the store {form.data_dir}" if isinstance(form, store.Store) else form.description
    log_fn(f"Loaded {data.dataset} from {where} in {time.perf_counter() - began:.1f} s")
    return samplers


def _quiet(line: str) -> None:
    del line


#: The run folder's record of which classes each split holds.
SPLIT_FILE = "split.json"


def write_split(directory: str, samplers: dict[str, episodes.Sampler], data_dir: str) -> str:
    """Writes split -> class names into `directory/split.json` (Omniglot: the
    `<alphabet>/<character>` folders, without their rotated copies), so users
    know which classes were held out of training; returns the path."""
    root = os.path.abspath(data_dir)

    def relative(name):
        path = os.path.abspath(name)
        return os.path.relpath(path, root) if path.startswith(root + os.sep) else name

    split = {}
    for name, sampler in samplers.items():
        classes = dict.fromkeys(relative(n.split("@")[0]) for n in sampler.names)
        split[name] = list(classes)
    path = os.path.join(directory, SPLIT_FILE)
    os.makedirs(directory, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(split, f, indent=1)
    os.replace(path + ".tmp", path)
    return path


def task_specs(config: Config) -> tuple[episodes.TaskSpec, episodes.TaskSpec]:
    """(training task spec, evaluation task spec)."""
    if config.meta.algorithm in MAML_LIKE:
        return _maml_task_specs(config)
    task, inner, meta, ev = config.task, config.inner, config.meta, config.eval
    train_spec = episodes.TaskSpec(task.classes, config.effective_train_shots, inner.inner_batch,
                                   inner.inner_iters, task.replacement,
                                   meta.foml_tail if meta.algorithm == "foml" else None)
    eval_spec = episodes.TaskSpec(task.classes, task.shots, ev.eval_batch, ev.eval_iters,
                                  task.replacement)
    return train_spec, eval_spec


def _maml_task_specs(config: Config) -> tuple[episodes.TaskSpec, episodes.TaskSpec]:
    """MAML's tasks: every inner step uses the whole support set; a training
    task's `tail_shots` extra images per class are its query set."""
    n, k, query = config.task.classes, config.effective_train_shots, config.effective_query_shots
    train_spec = episodes.TaskSpec(n, k + query, n * k, config.inner.inner_iters + 1,
                                   tail_shots=query)
    shots = config.task.shots
    eval_spec = episodes.TaskSpec(n, shots, n * shots, config.eval.eval_iters)
    return train_spec, eval_spec


def schedule(config: Config) -> str:
    """The task schedule (`algorithms.schedules`) the performance options name."""
    perf = config.performance
    return "at-once" if perf.parallel_tasks else (perf.inner_state or "shared")


def build_model(config: Config) -> keras.Model:
    """The untrained meta-model of the configured dataset (weights from the seed)."""
    if config.data.dataset == SINUSOID:
        oracle = config.meta.algorithm == "oracle"
        return sinusoid.build_sinusoid_model(config.run.seed, sinusoid.input_size(oracle))
    return models.build(config.data.dataset, config.task.classes, config.run.seed,
                        image_shape(config))


def build_algorithm(config: Config) -> Algorithm:
    """The meta-model, inner optimizer and algorithm the configuration names.

    Sinusoid regression uses the mean squared error and predicts
    transductively: its model has no batch norm, so that is the plain forward
    pass.
    """
    model = build_model(config)
    regression = config.data.dataset == SINUSOID
    common = dict(transductive=regression or config.task.transductive, schedule=schedule(config))
    if regression:
        common["loss_fn"] = sinusoid.mse
    inner, meta = config.inner, config.meta
    if meta.algorithm in MAML_LIKE:
        cls = {"maml": MAML, "pretrained": Pretrained, "oracle": Oracle}[meta.algorithm]
        return cls(model, inner.maml_inner_lr, meta.meta_lr, first_order=meta.maml_first_order,
                   **common)
    optimizer = make_optimizer("sgd" if inner.sgd else "adam", inner.learning_rate)
    cls = FOML if meta.algorithm == "foml" else Reptile
    return cls(model, optimizer, weight_decay=inner.weight_decay, **common)
