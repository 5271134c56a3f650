"""``python -m flue_actors``: the same as the ``flue-actors`` command."""

import sys

from ._cli import main

sys.exit(main())
