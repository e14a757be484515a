"""``python -m shmbus.consumers events|logs``: see :mod:`shmbus.consumers`."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
