"""Finding the user's App from a reference such as `myproject.jobs:app`."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from typing import Any

from pulsarjobs.app import App
from pulsarjobs.errors import ConfigurationError


def load_app(reference: str, settings: Mapping[str, Any] | None = None) -> App:
    """`module:attribute`, or `module` holding an attribute named `app`; `settings` (e.g. the
    command line's `--service-url`) replace those the app was made with."""
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
    if settings:
        app.settings = app.settings.with_changes(**settings)
    return app
