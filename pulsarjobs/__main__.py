"""`python -m pulsarjobs`: the command line, as `pulsarjobs`."""

from pulsarjobs.cli import main

main()
