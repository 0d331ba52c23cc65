"""Finding the user's App from a reference such as `myproject.jobs:app`."""

from __future__ import annotations

import importlib
import os
import sys

from pulsarjobs.app import App
from pulsarjobs.errors import ConfigurationError


def load_app(reference: str) -> App:
    """`module:attribute`, or `module` holding an attribute named `app`."""
    module_name, _, attribute = reference.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: the user's project is importable
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {module_name!r} (from {reference!r}): {exc}"
        ) from exc
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, App):
        raise ConfigurationError(
            f"{reference!r} does not name a pulsarjobs App: write it as module:attribute"
        )
    return app
