"""The web dashboard: `pulsarjobs dashboard [APP]` (see docs/dashboard.md)."""

from pulsarjobs.dashboard.app import create_app
from pulsarjobs.dashboard.auth import Secret

__all__ = ["Secret", "create_app"]
