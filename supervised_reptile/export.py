"""`python -m supervised_reptile.export`: a training run's checkpoint -> a SavedModel.

The command's entry point only; the SavedModel is built by `saved_model` and
the flags and exit statuses are `cli`'s.
"""

import sys

if __name__ == "__main__":
    from supervised_reptile import cli
    sys.exit(cli.export_main(sys.argv[1:]))
