"""`python -m wflwv`: the command line, for launchers that start modules (torchrun -m wflwv train ...)."""

from wflwv.cli import main

main()
