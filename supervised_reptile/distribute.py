"""Meta-batches across devices and machines with `tf.distribute`.

Under a `MirroredStrategy` (several GPUs, or several logical CPU devices) or a
`MultiWorkerMirroredStrategy` (several processes configured by `TF_CONFIG`),
every replica holds a mirrored copy of the meta-model and of the inner
optimizer state, and all of them draw the same meta-batch: a task is a pure
function of (seed, task index), so 1, 2 or 5 replicas see identical tasks.

Semantics of one distributed meta-iteration with R replicas and M tasks:
  * Replica r runs tasks r, r + R, r + 2R, ... one after another with its
    own task learner, from the same meta-weights.
  * The meta-update is `old + epsilon * (sum of all M task updates) / M`,
    the sum an all-reduce: the mean of the Reptile / FOML updates, exactly as
    on one device up to the order of floating-point additions.
  * The inner optimizer state: each replica starts from the shared state and
    carries it through its own tasks; afterwards the replicas' states are
    averaged (an all-reduce), so every replica holds the same state again.
    With one replica this is the original's sharing (state flows through all
    M tasks in sequence); with R > 1 it cannot be (each replica sees only its
    share). A state-free inner loop (SGD), or the per-task schedule
    (every task starts from the meta-iteration's state; the new state is the
    mean of the tasks' final states, gathered in slots like the updates),
    makes a distributed run equal the single-device run bit for bit.
  * MAML: replicas compute their tasks' meta-gradients into slots; the outer
    Adam step on their mean is then taken identically on every replica.
  * Evaluation: a stack of tasks is split into one share per replica, and
    each replica adapts its share at once (`adapt_and_predict_many`).

Only the chief writes checkpoints, TensorBoard events and exports; every
worker restores from the same checkpoint directory.
"""

import json
import os

import keras
import tensorflow as tf

from supervised_reptile import guard
from supervised_reptile.algorithms.base import Algorithm, MetaLearner, compile_graph
from supervised_reptile.episodes import EvalEpisode, TrainEpisode

STRATEGIES = ("none", "mirrored", "multi-worker")

#: Seconds a collective may wait for a peer before the run fails (a dead
#: worker otherwise hangs the others forever).
COLLECTIVE_TIMEOUT_S = 120.0


def configure_cpu_devices(count: int) -> None:
    """Splits the CPU into `count` logical devices (before TensorFlow starts).

    Raises:
      ValueError: `count` < 1, or TensorFlow's devices are already initialised.
    """
    if count < 1:
        raise ValueError(f"count {count} must be >= 1")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as err:
        raise ValueError(f"{count} logical CPU devices: TensorFlow is already initialised "
                         f"({err})") from err


def make_strategy(kind: str, cpu_devices: int = 1,
                  timeout_s: float = COLLECTIVE_TIMEOUT_S) -> tf.distribute.Strategy:
    """The strategy named `kind`.

    A process makes each strategy once and hands the same one to every later
    run: two strategies over the same devices would number their collectives
    alike, and the runtime would match an all-reduce of one run with another's.

    Args:
      kind: "none" (TensorFlow's default strategy: one device), "mirrored"
        (every GPU, or `cpu_devices` logical CPU devices when there is no GPU)
        or "multi-worker" (the cluster in the `TF_CONFIG` environment variable).
      cpu_devices: logical CPU devices to split the CPU into (mirrored, no GPU).
      timeout_s: how long a collective waits for a peer (multi-worker).
    """
    if kind not in STRATEGIES:
        raise ValueError(f"strategy {kind!r} is not one of {STRATEGIES}")
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        if not tf.config.list_physical_devices("GPU") and cpu_devices > 1:
            configure_cpu_devices(cpu_devices)
        gpus = tf.config.list_logical_devices("GPU")
        devices = tuple(d.name for d in (gpus or tf.config.list_logical_devices("CPU")))
        return _made(("mirrored", devices), lambda: tf.distribute.MirroredStrategy(devices))
    if "TF_CONFIG" not in os.environ:
        raise ValueError("the multi-worker strategy needs the TF_CONFIG environment variable "
                         "(the cluster spec and this worker's task; see the README)")
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)
    return _made(("multi-worker", timeout_s), lambda: tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=options))


_MADE: dict = {}


def _made(key, make):
    """The strategy made for `key` in this process (made now if it is the first)."""
    if key not in _MADE:
        _MADE[key] = make()
    return _MADE[key]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one process that writes checkpoints, events and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_description() -> str:
    """`type:index` of this process from `TF_CONFIG` ("single" without one)."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task")
    return f"{task['type']}:{task['index']}" if task else "single"


#: What a collective raises when a peer is gone or too slow.
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
               tf.errors.CancelledError, tf.errors.AbortedError)


def worker_lost(err: tf.errors.OpError, latest_checkpoint: str | None) -> guard.WorkerLostError:
    """The one-line error a user gets when a peer dies mid-run."""
    reason = next((line.strip() for line in err.message.splitlines()
                   if "aborted" in line or "Deadline" in line), err.message.splitlines()[0])
    saved = (f"the last checkpoint, {latest_checkpoint}, is intact: start every worker again "
             "with the same command to resume from it" if latest_checkpoint
             else "no checkpoint was written yet")
    return guard.WorkerLostError(f"worker {worker_description()} lost contact with a peer "
                           f"({type(err).__name__}: {reason}); {saved}")


class DistributedLearner(MetaLearner):
    """A meta-learner whose meta-iterations and evaluations run across replicas.

    Build the algorithm inside `strategy.scope()` so that its meta-model and
    optimizer states are mirrored variables, then use this object wherever
    the algorithm would be used: it implements the same interface.

    Args:
      algorithm: an `Algorithm` built under `strategy.scope()`.
      strategy: the `tf.distribute.Strategy`.
    """

    def __init__(self, algorithm: Algorithm, strategy: tf.distribute.Strategy):
        self.algorithm = algorithm
        self.strategy = strategy
        self.num_replicas = strategy.num_replicas_in_sync
        self._step_fn = compile_graph(self._meta_step)
        self._predict_fn = compile_graph(self._predict_many)

    @property
    def model(self) -> keras.Model:
        return self.algorithm.model

    @property
    def optimizer(self) -> tf.Module:
        return self.algorithm.optimizer

    @property
    def transductive(self) -> bool:
        return self.algorithm.transductive

    def _replica_step(self, episodes: TrainEpisode):
        """This replica's share of the tasks, each result in its own slot,
        all-reduced: every slot then holds exactly one task's result (x + 0
        is exact), whichever replica computed it."""
        alg = self.algorithm
        ctx = tf.distribute.get_replica_context()
        old, frozen = alg.read_weights()
        updates, losses, state = alg.task_updates(
            old, frozen, alg.inner_state(), episodes,
            first=ctx.replica_id_in_sync_group, stride=self.num_replicas)
        updates, losses = ctx.all_reduce(tf.distribute.ReduceOp.SUM, (updates, losses))
        if tf.nest.flatten(state):  # SGD and MAML have no inner state
            state = ctx.all_reduce(alg.schedule.replica_reduction, state)
        return old, updates, losses, state

    def _meta_step(self, episodes: TrainEpisode, meta_step_size):
        results = self.strategy.run(self._replica_step, args=(episodes,))
        # All-reduced, so every local replica holds the same values.
        old, updates, losses, state = tf.nest.map_structure(
            lambda x: self.strategy.experimental_local_results(x)[0], results)
        return self.algorithm.apply_meta_update(old, updates, losses, state, meta_step_size)

    def meta_step(self, episodes: TrainEpisode, meta_step_size: float) -> dict:
        """One meta-iteration over a meta-batch (every replica is given all of it)."""
        return self._step_fn(episodes, tf.constant(meta_step_size, tf.float32))

    def adapt_and_predict(self, episode: EvalEpisode, every_step: bool = False) -> tf.Tensor:
        """One task, on this process's first replica."""
        return self.algorithm.adapt_and_predict(episode, every_step)

    def _replica_predict(self, episodes: EvalEpisode, every_step: bool):
        ctx = tf.distribute.get_replica_context()
        share = episodes.support_images.shape[0] // self.num_replicas
        first = ctx.replica_id_in_sync_group * share
        mine = tf.nest.map_structure(lambda x: x[first:first + share], episodes)
        outputs = self.algorithm.stacked_outputs(mine, every_step)
        # Each replica fills its own rows; the sum gathers all of them exactly.
        rows = tf.range(episodes.support_images.shape[0])
        own = tf.logical_and(rows >= first, rows < first + share)
        shape = tf.concat([[episodes.support_images.shape[0]], tf.shape(outputs)[1:]], 0)
        placed = tf.scatter_nd(tf.where(own), outputs, tf.cast(shape, tf.int64))
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, placed)

    def _predict_many(self, episodes: EvalEpisode, every_step: bool):
        outputs = self.strategy.run(self._replica_predict, args=(episodes, every_step))
        return self.strategy.experimental_local_results(outputs)[0]

    def adapt_and_predict_many(self, episodes: EvalEpisode,
                               every_step: bool = False) -> tf.Tensor:
        """A share of the tasks per replica, each share adapted at once.

        The task count is padded to a multiple of the replica count with
        copies of the last task, whose results are dropped.
        """
        tasks = episodes.support_images.shape[0]
        pad = -tasks % self.num_replicas
        if pad:
            episodes = tf.nest.map_structure(
                lambda x: tf.concat([x, tf.repeat(x[-1:], pad, axis=0)], 0), episodes)
        return self._predict_fn(episodes, every_step)[:tasks]

    def adapt(self, episode: EvalEpisode) -> keras.Model:
        return self.algorithm.adapt(episode)
