"""The Python blocks of README.md and docs/*.md, and how a page of them is run.

Every ```python block is run, unless the line before its fence is an HTML comment
`<!-- fragment: why -->`: then it is only compiled. The comment is hidden when the page is
rendered (the reader copies clean code) and the reason stays next to the block in the source.

A page's blocks run in order in one namespace, as `__main__`, as if pasted one after the other
into one script. A block whose first line is a comment naming a Python file (`# myproject/jobs.py`)
is that file: it is written under the page's directory before anything runs, and run in its turn
by importing it (as a worker does); a file named `test_*.py` is run with pytest.

`python tests/docblocks.py PAGE` runs PAGE's blocks in the current directory, which holds the
page's files; a block that fails ends it with `PAGE:LINE: ...` and the traceback, exit code 1.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\s*$")
FRAGMENT = re.compile(r"^<!--\s*fragment:\s*(?P<why>.*?)\s*-->\s*$")
FILE_LINE = re.compile(r"^#\s*(?P<path>[\w./-]+\.py)\s*$")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository, e.g. docs/getting-started.md
    line: int  # the block's first line of code in the page, counted from 1
    source: str
    fragment: str | None  # why it is only compiled; None: it runs

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def file(self) -> str | None:
        """The file this block is (its first line names it), if it is one."""
        first = self.source.split("\n", 1)[0]
        found = FILE_LINE.match(first)
        return found["path"] if found else None

    def compiled(self, filename: str | None = None) -> types.CodeType:
        """The block's code; in tracebacks, its lines are numbered (and, given the page's
        `filename`, shown) as in the page."""
        padded = "\n" * (self.line - 1) + self.source
        return compile(padded, filename or self.page, "exec", dont_inherit=True)


def pages(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def blocks(page: Path, root: Path = ROOT) -> list[Block]:
    name = page.relative_to(root).as_posix() if page.is_relative_to(root) else page.name
    return list(read_blocks(page.read_text(), name))


def read_blocks(text: str, page: str) -> Iterator[Block]:
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        if not FENCE.match(lines[index]):
            marker = FRAGMENT.match(lines[index])
            if marker and not (index + 1 < len(lines) and FENCE.match(lines[index + 1])):
                raise ValueError(f"{page}:{index + 1}: a fragment mark not followed by ```python")
            index += 1
            continue
        marker = FRAGMENT.match(lines[index - 1]) if index else None
        if marker and not marker["why"]:
            raise ValueError(f"{page}:{index}: a fragment mark must say why it cannot run")
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"{page}:{index + 1}: a ```python block that is never closed")
        source = "\n".join(lines[index + 1 : end]) + "\n"
        yield Block(page, index + 2, source, marker["why"] if marker else None)
        index = end + 1


def write_files(page_blocks: list[Block], directory: Path) -> None:
    """The page's file blocks, where its later blocks (and a worker) import them from."""
    for block in page_blocks:
        if block.file and not block.fragment:
            path = directory / block.file
            path.parent.mkdir(parents=True, exist_ok=True)
            for package in path.relative_to(directory).parents:
                if package != Path(".") and not (directory / package / "__init__.py").exists():
                    (directory / package / "__init__.py").write_text("")
            path.write_text(block.source)


def run_page(page: Path) -> int:
    """Run the page's blocks in the current directory; 1 at the first that fails."""
    sys.path[0] = str(Path.cwd())  # not tests/: the page's own files are importable
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main  # classes and pickles of the blocks find their module
    for block in blocks(page):
        if block.fragment:
            continue
        print(f"{block.where}: running", flush=True)
        try:
            if block.file and Path(block.file).name.startswith("test_"):
                tests = subprocess.run(
                    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", block.file],
                    check=False,
                )
                if tests.returncode:
                    raise AssertionError(f"pytest {block.file} exited {tests.returncode}")
            elif block.file:
                importlib.import_module(block.file.removesuffix(".py").replace("/", "."))
            else:
                exec(block.compiled(str(page)), main.__dict__)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt of a block too
            print(f"{block.where}: this block failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            traceback.print_exc()
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_page((ROOT / sys.argv[1]).resolve()))
