"""`python -m supervised_reptile.export`: a training run's checkpoint -> a SavedModel.

The command's entry point only; the SavedModel is built by `saved_model` and
the flags and exit statuses are `cli`'s.
"""

import os
import sys

# TensorFlow's C++ start-up lines (CPU features, CUDA probing) say nothing a user acts on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":
    from supervised_reptile import cli
    sys.exit(cli.export_main(sys.argv[1:]))
