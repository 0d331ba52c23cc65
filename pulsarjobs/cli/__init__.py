"""The `pulsarjobs` command line."""

from pulsarjobs.cli.main import app, main

__all__ = ["app", "main"]
