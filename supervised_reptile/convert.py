"""`python -m supervised_reptile.convert DATA_DIR --dataset NAME [--store DIR]`:
decode a dataset in any form it is read from into a decoded-image store.

The command's entry point only; the work is `data.store`'s and the flags and
exit statuses are `cli`'s.
"""

import os
import sys

# TensorFlow's C++ start-up lines (CPU features, CUDA probing) say nothing a user acts on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":
    from supervised_reptile import cli
    sys.exit(cli.convert_main(sys.argv[1:]))
