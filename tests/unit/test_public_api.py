import re
from pathlib import Path

import pulsarjobs

DOCS = Path(__file__).parents[2] / "docs"
SUBMODULE_IMPORT = re.compile(r"^\s*(?:from|import) (pulsarjobs\.[\w.]+)", re.MULTILINE)


def test_every_public_name_is_importable_from_the_package() -> None:
    missing = [name for name in pulsarjobs.__all__ if not hasattr(pulsarjobs, name)]
    assert missing == []
    assert {"App", "Worker", "RetryPolicy", "current_job", "JobCall"} <= set(pulsarjobs.__all__)
    assert {"Inspector", "NotFound", "Outcome"} <= set(pulsarjobs.__all__)


def test_the_docs_import_only_from_the_package_its_testing_and_outbox_modules() -> None:
    imports = {
        f"{page.name}: {module}"
        for page in DOCS.glob("*.md")
        for module in SUBMODULE_IMPORT.findall(page.read_text())
        if module not in ("pulsarjobs.testing", "pulsarjobs.outbox")
    }
    assert imports == set()
