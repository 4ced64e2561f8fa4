"""Run configuration: a frozen `Config` of concept groups, the paper presets, config.json.

The paper presets are in `presets.py`. Flags and presets are flat by nature, so every field name is unique across the
groups; `Config.from_flat`, `.flat()` and `.replace()` translate between the
views. `flags.py` fills a `Config`; `validate.py` holds the rules it must obey.
"""

import dataclasses
import json
import os
from typing import Any

DATASETS = ("omniglot", "miniimagenet", "tieredimagenet", "cifar-fs", "fc100", "folder")
#: The regression benchmark of the MAML and Reptile papers (`run_sinusoid.py`).
SINUSOID = "sinusoid"
ALGORITHMS = ("reptile", "foml", "maml", "pretrained", "oracle")
CONFIG_FILE = "config.json"
RESULT_FORMATS = (".json", ".csv")  # of the final evaluation's per-task results


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from.

    Attributes:
      dataset: one of `DATASETS`, or "sinusoid" (generated, no files).
      data_dir: dataset root (the command line's default: `data/<dataset>`).
      train_characters: Omniglot: characters in the training split (the rest: test).
      skip_bad_images: leave out (and warn about) images that do not decode; else stop.
      image_size: "folder": the side images are resized to (0: inferred).
      channels: "folder": 1 (greyscale) or 3 (RGB) (0: inferred).
      store: image datasets: the decoded-image store's folder ("": a
        `.decoded` folder in `data_dir`, or the user's cache if that is not
        writable; "off": decode every run and hold the images in memory).
    """
    dataset: str = "omniglot"
    data_dir: str = ""
    train_characters: int = 1200
    skip_bad_images: bool = False
    image_size: int = 0
    channels: int = 0
    store: str = ""


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """The shape of a few-shot task.

    Attributes:
      classes: N, classes per task (training and evaluation).
      shots: K, support images per class at evaluation (and training, see below).
      train_shots: images per class in a meta-training task (0: use `shots`).
      replacement: draw each inner mini-batch independently (training and evaluation).
      transductive: predict all queries in one batch.
    """
    classes: int = 5
    shots: int = 5
    train_shots: int = 0
    replacement: bool = False
    transductive: bool = False


@dataclasses.dataclass(frozen=True)
class InnerConfig:
    """The inner loop: adapting the weights to one task.

    Attributes:
      inner_batch: inner mini-batch size in meta-training.
      inner_iters: inner steps per meta-training task.
      learning_rate: inner optimizer step size (Adam, or SGD with `sgd`).
      sgd: plain SGD instead of Adam (beta1=0) in the inner loop.
      weight_decay: multiplicative shrink before every inner step (1: none).
      maml_inner_lr: MAML's alpha, the inner SGD step size.
    """
    inner_batch: int = 5
    inner_iters: int = 20
    learning_rate: float = 1e-3
    sgd: bool = False
    weight_decay: float = 1.0
    maml_inner_lr: float = 0.01


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    """The outer loop: which meta-learner and how it updates the initialization.

    Attributes:
      algorithm: "reptile", "foml" (the original's first-order MAML), "maml"
        (Finn et al. 2017: inner SGD on the whole support set, outer Adam on the query
        loss), or a sinusoid baseline of the MAML paper: "pretrained" (one network trained
        on the task mixture, fine-tuned as MAML) or "oracle" (that, with amplitude and phase
        as inputs).
      maml_first_order: with "maml", drop the second-order terms.
      foml_tail: with "foml", shots per class held out for the final inner batch.
      meta_step: initial meta step size epsilon (Reptile and FOML).
      meta_step_final: epsilon is annealed linearly towards this.
      meta_batch: tasks per meta-update.
      meta_iters: meta-iterations.
      meta_lr: with "maml", the outer Adam learning rate.
      maml_query_shots: with "maml", query images per class in a training task
        (0: as many as the support shots, as the reference code on Omniglot).
    """
    algorithm: str = "reptile"
    maml_first_order: bool = False
    foml_tail: int | None = None
    meta_step: float = 0.1
    meta_step_final: float = 0.1
    meta_batch: int = 1
    meta_iters: int = 400000
    meta_lr: float = 1e-3
    maml_query_shots: int = 0


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluation tasks, during training (monitoring) and after it.

    Attributes:
      eval_batch: inner mini-batch size when fine-tuning on an evaluation task.
      eval_iters: inner steps on an evaluation task.
      eval_samples: tasks per split in the final evaluation.
      eval_interval: iterations between monitoring evaluations.
    """
    eval_batch: int = 5
    eval_iters: int = 50
    eval_samples: int = 10000
    eval_interval: int = 10


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The run's randomness, files and outputs.

    Attributes:
      seed: the one seed for weights, the Omniglot split and every task.
      checkpoint: directory for checkpoints, config.json and TensorBoard logs.
      pretrained: skip training; evaluate the latest checkpoint.
      restart: delete this run's checkpoints and logs in `checkpoint` instead of resuming.
      checkpoint_interval: iterations between checkpoints (and at the end).
      progress: progress bar on stderr: "auto" (if stderr is a terminal), "on", "off".
      eval_results: the final evaluation's per-task results (.json or .csv); "" for none.
      export: directory for a SavedModel of the trained model; "" for none.
      compare: sinusoid: earlier runs' folders whose adapted fits the picture shows too.
    """
    seed: int = 0
    checkpoint: str = "model_checkpoint"
    pretrained: bool = False
    restart: bool = False
    checkpoint_interval: int = 100
    progress: str = "auto"
    eval_results: str = ""
    export: str = ""
    compare: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "compare", tuple(self.compare))  # hashable, as it is frozen


@dataclasses.dataclass(frozen=True)
class PerformanceConfig:
    """Speed options; none changes results by default.

    Attributes:
      parallel_tasks: meta-train a meta-batch's tasks at once (not the original's
        semantics: each task gets its own copy of the inner optimizer state).
      inner_state: "shared" (the original) or "per-task" inner optimizer state
        in meta-training; None: "per-task" with `parallel_tasks`, else "shared".
      eval_tasks_at_once: evaluation tasks adapted at once (results equal up to
        rounding; 1: one by one); None: the model's measured setting
        (`build.TASKS_AT_ONCE`).
      intra_op_threads: TensorFlow's intra-op pool (threads one op may use;
        0: its own default, one per core); None: the model's measured setting
        (`build.THREADS`).
      inter_op_threads: its inter-op pool (ops run at the same time), likewise.
    """
    parallel_tasks: bool = False
    inner_state: str | None = None
    eval_tasks_at_once: int | None = None
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None


@dataclasses.dataclass(frozen=True)
class DistributionConfig:
    """Spreading a meta-batch's tasks over replicas (`distribute.py`).

    Attributes:
      distribute: "none", "mirrored" (all GPUs, or `cpu_devices` logical CPU
        devices) or "multi-worker" (processes configured by `TF_CONFIG`).
      cpu_devices: with "mirrored" and no GPU, logical CPU devices (to test that path).
    """
    distribute: str = "none"
    cpu_devices: int = 1


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run needs: each attribute is its group (`data` a `DataConfig`, ...)."""
    data: DataConfig = DataConfig()
    task: TaskConfig = TaskConfig()
    inner: InnerConfig = InnerConfig()
    meta: MetaConfig = MetaConfig()
    eval: EvalConfig = EvalConfig()
    run: RunConfig = RunConfig()
    performance: PerformanceConfig = PerformanceConfig()
    distribution: DistributionConfig = DistributionConfig()

    @classmethod
    def from_flat(cls, **fields: Any) -> "Config":
        """A `Config` from flat field names (missing ones default; TypeError for unknown ones)."""
        unknown = sorted(set(fields) - set(_GROUP_OF))
        if unknown:
            raise TypeError(f"unknown Config fields: {unknown}")
        return cls(**{group: group_cls(**{k: v for k, v in fields.items() if _GROUP_OF[k] == group})
                      for group, group_cls in _GROUPS.items()})

    def flat(self) -> dict[str, Any]:
        """Field name -> value over all groups, in group order."""
        return {k: v for g in _GROUPS for k, v in dataclasses.asdict(getattr(self, g)).items()}

    def replace(self, **fields: Any) -> "Config":
        """A copy with the named flat fields changed."""
        return Config.from_flat(**{**self.flat(), **fields})

    @property
    def effective_train_shots(self) -> int:
        """Images per class in a training task: `train_shots`, else `shots` (as the original)."""
        return self.task.train_shots or self.task.shots

    @property
    def effective_query_shots(self) -> int:
        """MAML's query images per class in a training task."""
        return self.meta.maml_query_shots or self.effective_train_shots


# Group attribute -> its dataclass, in order; flat field name -> its group attribute.
_GROUPS = {f.name: f.type for f in dataclasses.fields(Config)}
_GROUP_OF = {f.name: group for group, cls in _GROUPS.items() for f in dataclasses.fields(cls)}


def from_dict(saved: dict, **overrides: Any) -> Config:
    """A `Config` from a config.json's content, nested or flat (as earlier runs wrote it)."""
    return Config.from_flat(**{**flat_dict(saved), **overrides})


def flat_dict(saved: dict) -> dict[str, Any]:
    """The known flat fields of a config.json's content, nested or flat (the old format's
    `foml` and `maml` switches become `algorithm`; unknown keys are dropped)."""
    flat = {k: v for k, v in saved.items() if k not in _GROUPS}
    for group in (v for k, v in saved.items() if k in _GROUPS and isinstance(v, dict)):
        flat.update(group)
    foml, maml = flat.pop("foml", False), flat.pop("maml", False)
    if "algorithm" not in flat and (foml or maml):
        flat["algorithm"] = "maml" if maml else "foml"
    # JSON has no tuples: lists come back as the tuples the config holds.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in flat.items() if k in _GROUP_OF}


def save(config: Config, directory: str) -> None:
    """Writes `directory/config.json` atomically (a kill leaves the old or the new file)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, CONFIG_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def read(directory: str) -> dict[str, Any] | None:
    """`directory/config.json`'s flat fields (either format); None without one; ValueError."""
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return flat_dict(json.load(f))
    except (OSError, json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"cannot read {path}: {err}") from err
