"""How every command reports: one clear line on failure, exit codes 0 ok / 1 failure / 2 usage,
and tables that print every id and name whole at any width."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.operations.jsonable import jsonable

P = ParamSpec("P")
R = TypeVar("R")

errors = Console(stderr=True)
WRAPS_TO = 10  # the narrowest a column that may wrap gets (a date, a few words of an error)

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


def print_table(
    console: Console,
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    wraps: Collection[str] = (),
    right: Collection[str] = (),
    caption: str | None = None,
) -> None:
    """Print `table(...)`, a value longer than the console's line on one line all the same."""
    shown = table(console, title, columns, rows, wraps=wraps, right=right, caption=caption)
    console.print(shown, crop=False)


def table(
    console: Console,
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    wraps: Collection[str] = (),
    right: Collection[str] = (),
    caption: str | None = None,
) -> RenderableType:
    """Rows (of rich markup) under their columns, as wide as the console allows. Only a column
    in `wraps` (errors, descriptions, times) may wrap its values; every other one (ids, names,
    numbers) keeps each value whole, on one line. When those do not fit, each row is printed as
    a block of `column  value` lines instead, as `psql \\x` does."""
    cells = [[Text.from_markup(cell) for cell in row] for row in rows]
    widths = fitted(console.width, columns, cells, wraps)
    if widths is None:
        return blocks(title, columns, cells, caption)
    shown = Table(title=title, caption=caption)
    for column, width in zip(columns, widths, strict=True):
        shown.add_column(
            column, width=width, overflow="fold", justify="right" if column in right else "left"
        )
    for row in cells:
        shown.add_row(*row)
    return shown


def fitted(
    room: int, columns: Sequence[str], rows: list[list[Text]], wraps: Collection[str]
) -> list[int] | None:
    """Each column's width, its values whole unless it `wraps`; None when that is too wide."""
    room -= 3 * len(columns) + 1  # the borders, and a space either side of each value
    natural, least = [], []
    for index, column in enumerate(columns):
        longest = max((width_of(row[index]) for row in rows), default=0)
        header_word = max(cell_len(word) for word in column.split())  # headers wrap at spaces
        natural.append(max(longest, cell_len(column)))
        least.append(max(min(longest, WRAPS_TO) if column in wraps else longest, header_word))
    if sum(least) > room:
        return None
    widths = natural
    while sum(widths) > room:  # narrow the column with the most to spare, a cell at a time
        spare = max(range(len(widths)), key=lambda index: widths[index] - least[index])
        widths[spare] -= 1
    return widths


def width_of(value: Text) -> int:
    return max(cell_len(line) for line in value.plain.split("\n"))


def blocks(
    title: str, columns: Sequence[str], rows: list[list[Text]], caption: str | None
) -> RenderableType:
    """Each row as lines of `column  value`, the value on one line however long."""
    label_width = max(cell_len(column) for column in columns)
    lines = [Text(title, style="table.title")]
    for row in rows:
        lines.append(Text())
        for column, value in zip(columns, row, strict=True):
            for index, line in enumerate(value.split("\n")):
                label = f"{column if index == 0 else '':>{label_width}}"
                lines.append(
                    Text.assemble((label, "bold"), "  ", line, no_wrap=True, overflow="ignore")
                )
    if caption:
        lines += [Text(), Text(caption, style="table.caption")]
    return Group(*lines)
