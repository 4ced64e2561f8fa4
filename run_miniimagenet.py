"""Train and evaluate on Mini-ImageNet: the original's command line, verbatim.

Example (the paper's 5-shot 5-way command):
  python -u run_miniimagenet.py --inner-batch 10 --inner-iters 8 --meta-step 1 \
    --meta-batch 5 --meta-step-final 0 --meta-iters 100000 --eval-batch 15 \
    --eval-iters 50 --learning-rate 0.001 --train-shots 15 --checkpoint ckpt_m55
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from supervised_reptile import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:], "miniimagenet"))
