"""The ``landscape`` command line, installed as :mod:`landscape.cli`."""
