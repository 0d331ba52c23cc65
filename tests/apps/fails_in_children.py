"""An app that loads in the supervisor of `pulsarjobs worker --processes N` but not in its worker
processes, as one whose import depends on the process it runs in would."""

from __future__ import annotations

import multiprocessing

from pulsarjobs import App

if multiprocessing.parent_process() is not None:
    raise ImportError("this app cannot be imported in a worker process")

app = App()
