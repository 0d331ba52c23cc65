"""Web services that enqueue jobs, as docs/frameworks.md shows them (tests/integration/
test_frameworks.py runs them against a real broker and database)."""
