"""``python -m graphstore``: the command line (see :mod:`graphstore.cli`)."""

from graphstore.cli import main

main()
