"""`python -m operate` is the `coinstream` command (for tests and hosts without the console script on PATH)."""

from operate.cli import main

main()
