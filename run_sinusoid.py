"""Sinusoid regression, the papers' toy benchmark: needs no download.

Examples (each a few minutes on 2 CPU cores):
  python -u run_sinusoid.py                 # Reptile
  python -u run_sinusoid.py --maml          # second-order MAML
  python -u run_sinusoid.py --maml --maml-first-order
  python -u run_sinusoid.py --foml          # the original's first-order MAML

Prints the held-out post-adaptation MSE before and after meta-training and
writes `<checkpoint>/sinusoid.png` (also a TensorBoard image).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from supervised_reptile import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli.sinusoid_main(sys.argv[1:]))
