"""``python -m flue_actors.cli``: the same as the ``flue-actors`` command."""

import sys

from . import main

sys.exit(main())
