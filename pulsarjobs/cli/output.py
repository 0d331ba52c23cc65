"""How every command reports: one clear line on failure, exit codes 0 ok / 1 failure / 2 usage."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console

from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.operations.jsonable import jsonable

P = ParamSpec("P")
R = TypeVar("R")

errors = Console(stderr=True)

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn pulsarjobs errors into one line and exit code 1, with no traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except PulsarJobsError as exc:
            fail(str(exc))

    return run


def print_json(value: Any) -> None:
    typer.echo(json.dumps(jsonable(value), indent=2))
