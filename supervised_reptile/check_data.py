"""`python -m supervised_reptile.check_data DATA_DIR`: the dataset check command (see `data.check`)."""

import sys

if __name__ == "__main__":
    from supervised_reptile import cli
    sys.exit(cli.check_data_main(sys.argv[1:]))
