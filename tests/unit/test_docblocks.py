"""The docs' Python blocks are read as the page says, each compiles, and a page's run names the
block that failed (the runs against a broker: tests/integration/test_docs_run.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import docblocks

PAGE = """# A page

```python
# myproject/jobs.py
app = 1
```

<!-- fragment: `orders` is the reader's own -->
```python
for order in orders:
    print(order)
```

```console
$ not python
```

```python
from myproject.jobs import app
print(app)
raise ValueError("boom")
```
"""


def test_blocks_are_read_with_their_first_line_their_file_and_why_a_fragment_only_compiles() -> (
    None
):
    read = list(docblocks.read_blocks(PAGE, "page.md"))

    assert [(b.line, b.file, b.fragment) for b in read] == [
        (4, "myproject/jobs.py", None),
        (10, None, "`orders` is the reader's own"),
        (19, None, None),
    ]
    assert read[1].source == "for order in orders:\n    print(order)\n"


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("<!-- fragment: -->\n```python\nx = 1\n```\n", "must say why"),
        ("<!-- fragment: why -->\n\n```python\nx = 1\n```\n", "not followed by ```python"),
        ("```python\nx = 1\n", "never closed"),
    ],
)
def test_a_mark_without_its_block_or_reason_or_an_open_block_is_refused(
    text: str, refused: str
) -> None:
    with pytest.raises(ValueError, match=refused):
        list(docblocks.read_blocks(text, "page.md"))


def test_every_python_block_of_the_docs_compiles_as_written() -> None:
    every = [block for page in docblocks.pages() for block in docblocks.blocks(page)]
    failures = []
    for block in every:
        try:
            block.compiled()
        except SyntaxError as exc:
            failures.append(f"{block.where}: {exc.msg} (line {exc.lineno})")
    assert len(every) > 20  # the pages were read
    assert not failures, "\n".join(failures)


def test_top_level_await_does_not_compile_and_names_its_line() -> None:
    text = "intro\n\n```python\nimport asyncio\nawait asyncio.sleep(0)\n```\n"
    (block,) = docblocks.read_blocks(text, "page.md")

    with pytest.raises(SyntaxError, match="'await' outside function") as raised:
        block.compiled()
    assert (raised.value.filename, raised.value.lineno) == ("page.md", 5)


def test_a_page_that_fails_names_the_page_the_block_and_the_error(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    docblocks.write_files(docblocks.blocks(page), tmp_path)

    done = subprocess.run(
        [sys.executable, docblocks.__file__, str(page)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert done.stdout.splitlines() == ["page.md:4: running", "page.md:19: running", "1"]
    assert "page.md:19: this block failed: ValueError: boom" in done.stderr
    # The traceback counts and shows the page's lines.
    assert f'File "{page}", line 21, in <module>\n    raise ValueError("boom")' in done.stderr
