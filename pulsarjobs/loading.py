"""Finding the user's App from a reference such as `myproject.jobs:app`."""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
import traceback
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
    except Exception as exc:  # the module's own code failed: one line that says where
        raise ConfigurationError(
            f"importing {module_name!r} failed at {_where(exc)}: {type(exc).__name__}: {exc} "
            f"(python -c 'import {module_name}' shows the traceback)"
        ) from exc
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, App):
        raise ConfigurationError(
            f"{reference!r} does not name a pulsarjobs App: write it as module:attribute"
        )
    if settings:
        app.settings = app.settings.with_changes(**settings)
    return app


def _where(exc: Exception) -> str:
    """file:line of the user's code where `exc` came from: the last frame outside Python's own
    and installed libraries and pulsarjobs (for a SyntaxError, the bad line)."""
    if isinstance(exc, SyntaxError):
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    theirs = [frame for frame in frames if not frame.filename.startswith(("<", *_NOT_THE_USERS))]
    frame = (theirs or frames)[-1]
    return f"{frame.filename}:{frame.lineno}"


_NOT_THE_USERS = (
    *{sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")},
    os.path.dirname(__file__),
)
