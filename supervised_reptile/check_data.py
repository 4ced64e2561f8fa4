"""`python -m supervised_reptile.check_data DATA_DIR`: the dataset check command (see `data.check`)."""

import sys

from supervised_reptile.data.check import main

if __name__ == "__main__":
    sys.exit(main())
