"""The ``flue-actors`` command-line suite: every test drives the real console script."""
