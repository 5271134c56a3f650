"""``python -m flue_actors``: the same as the ``flue-actors`` command."""

import sys

from ._cli import main

# Guarded: the workers of ``serve --workers`` are spawned processes that import this module.
if __name__ == "__main__":
    sys.exit(main())
