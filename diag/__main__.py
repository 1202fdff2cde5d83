"""`python -m diag` runs the command-line interface."""
from diag.cli import main

main()
