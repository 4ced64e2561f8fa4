"""`python -m supervised_reptile.check_data DATA_DIR`: the dataset check command (see `data.check`)."""

import os
import sys

# TensorFlow's C++ start-up lines (CPU features, CUDA probing) say nothing a user acts on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":
    from supervised_reptile import cli
    sys.exit(cli.check_data_main(sys.argv[1:]))
