"""`python -m coinstream` is the `coinstream` command."""

from coinstream.cli import main

main()
