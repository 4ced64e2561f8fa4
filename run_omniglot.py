"""Train and evaluate on Omniglot: the original's command line, verbatim.

Example (the paper's 1-shot 5-way transductive command):
  python -u run_omniglot.py --shots 1 --inner-batch 10 --inner-iters 5 \
    --meta-step 1 --meta-batch 5 --meta-step-final 0 --meta-iters 100000 \
    --eval-batch 5 --eval-iters 50 --learning-rate 0.001 --train-shots 10 \
    --checkpoint ckpt_o15t --transductive
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from supervised_reptile import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:], "omniglot"))
