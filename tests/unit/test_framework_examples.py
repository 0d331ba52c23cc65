"""docs/frameworks.md shows the web-framework examples as they are: each of its blocks that
names a file of examples/frameworks is that file, which tests/integration/test_frameworks.py
runs against a real broker."""

from tests import docblocks

PAGE = docblocks.ROOT / "docs" / "frameworks.md"
EXAMPLES = docblocks.ROOT / "examples" / "frameworks"
NOT_SHOWN = {"__init__.py", "settings.py", "urls.py"}  # the page says what they hold


def test_the_page_shows_every_example_file_as_it_is() -> None:
    shown = {block.file: block.source for block in docblocks.blocks(PAGE) if block.file}
    files = {
        path.relative_to(docblocks.ROOT).as_posix(): path.read_text()
        for path in sorted(EXAMPLES.rglob("*.py"))
        if path.name not in NOT_SHOWN
    }
    assert set(shown) == set(files)
    for name, text in files.items():
        assert shown[name] == f"# {name}\n{text}", f"docs/frameworks.md shows an old {name}"
