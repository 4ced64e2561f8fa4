"""The paper presets: named settings that a run's flags start from.

Flat field names (`config.Config.from_flat`); explicit flags override them.
"""

from supervised_reptile.config import SINUSOID

_PAPER = dict(meta_step=1.0, meta_step_final=0.0, meta_batch=5, eval_iters=50)
_OMNI = dict(_PAPER, train_shots=10, inner_batch=10, inner_iters=5, meta_iters=100000,
             eval_batch=5, learning_rate=0.001)
_OMNI20 = dict(_PAPER, classes=20, train_shots=10, inner_batch=20, inner_iters=10,
               meta_iters=200000, eval_batch=10, learning_rate=0.0005)
_MINI = dict(_PAPER, train_shots=15, inner_batch=10, inner_iters=8, meta_iters=100000,
             learning_rate=0.001)

#: The README's paper commands (final version, commit 8f2b71c), by checkpoint name.
PRESETS = {
    "o15t": ("omniglot", dict(_OMNI, shots=1, transductive=True)),
    "o55": ("omniglot", dict(_OMNI)),
    "o15": ("omniglot", dict(_OMNI, shots=1)),
    "o120": ("omniglot", dict(_OMNI20, shots=1)),
    "o520": ("omniglot", dict(_OMNI20)),
    "m15t": ("miniimagenet", dict(_MINI, shots=1, eval_batch=5, transductive=True)),
    "m55": ("miniimagenet", dict(_MINI, eval_batch=15)),
    "m15": ("miniimagenet", dict(_MINI, shots=1, eval_batch=5)),
}

# Beyond the paper's commands: this project's settings for the other split datasets, the
# paper's Mini-ImageNet settings as they are for 5-way tasks; for 10-way ones the inner and
# evaluation batches scale with the classes as the paper's 20-way Omniglot settings do
# (docs/datasets.md). No Reptile results were published with these settings.
_MINI10 = dict(_MINI, classes=10, inner_batch=20)
_FIVE_WAY = {"15t": dict(_MINI, shots=1, eval_batch=5, transductive=True),
             "55": dict(_MINI, eval_batch=15), "15": dict(_MINI, shots=1, eval_batch=5)}
_TEN_WAY = {"110": dict(_MINI10, shots=1, eval_batch=10),
            "510": dict(_MINI10, eval_batch=30)}
#: 10-way Mini-ImageNet (m110, m510); tieredImageNet (t15t, t55, t15, t110, t510); CIFAR-FS
#: (c15t, c55, c15) and FC100 (f15t, f55, f15): `<letter><shots><ways>`, `t` transductive.
DATASET_PRESETS = {
    **{f"m{k}": ("miniimagenet", v) for k, v in _TEN_WAY.items()},
    **{f"t{k}": ("tieredimagenet", v) for k, v in {**_FIVE_WAY, **_TEN_WAY}.items()},
    **{f"c{k}": ("cifar-fs", v) for k, v in _FIVE_WAY.items()},
    **{f"f{k}": ("fc100", v) for k, v in _FIVE_WAY.items()},
}

# Finn et al. 2017 (5.2, A.1; cbfinn/maml): Omniglot 5-way alpha 0.4, 1 step (3 at test), meta-batch
# 32; 20-way alpha 0.1, 5 steps, meta-batch 16; K queries. Mini-ImageNet alpha 0.01, 5 steps (10 at
# test), meta-batch 4/2 (1/5-shot), 15 queries. All: meta-lr 1e-3, 60,000 iterations, 600 tasks.
_MAML = dict(algorithm="maml", meta_lr=1e-3, meta_iters=60000, eval_samples=600)
_MAML_OMNI = dict(_MAML, maml_inner_lr=0.4, inner_iters=1, eval_iters=3, meta_batch=32)
_MAML_OMNI20 = dict(_MAML, classes=20, maml_inner_lr=0.1, inner_iters=5, eval_iters=5,
                    meta_batch=16)
_MAML_MINI = dict(_MAML, maml_inner_lr=0.01, inner_iters=5, eval_iters=10, maml_query_shots=15)

#: The MAML paper's settings, by the same naming scheme.
MAML_PRESETS = {
    "maml-o15": ("omniglot", dict(_MAML_OMNI, shots=1)),
    "maml-o55": ("omniglot", dict(_MAML_OMNI, shots=5)),
    "maml-o120": ("omniglot", dict(_MAML_OMNI20, shots=1)),
    "maml-o520": ("omniglot", dict(_MAML_OMNI20, shots=5)),
    "maml-m15": ("miniimagenet", dict(_MAML_MINI, shots=1, meta_batch=4)),
    "maml-m55": ("miniimagenet", dict(_MAML_MINI, shots=5, meta_batch=2)),
}

#: `run_sinusoid.py`'s defaults: K=10 points per task, a few minutes on 2 CPU cores.
SINUSOID_DEFAULTS = dict(dataset=SINUSOID, classes=1, shots=10, inner_batch=10, inner_iters=5,
                         learning_rate=0.02, meta_step=1.0, meta_step_final=0.0, meta_batch=10,
                         meta_iters=4000, eval_batch=10, eval_iters=10, eval_samples=200,
                         eval_interval=500, maml_inner_lr=0.01, checkpoint="sinusoid_checkpoint")
