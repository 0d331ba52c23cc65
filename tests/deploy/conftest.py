"""The chart's tests: a real helm (scripts/helm builds it once), the chart rendered once per
session with its defaults and with ci/full-values.yaml.

Without helm (no Go to build it with, no module proxy) the tests fail under CI=true and skip
elsewhere, saying why. scripts/test builds it before the tests, so that a first build (minutes)
does not count against a test's timeout.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import unavailable
from tests.deploy.chart import FULL_VALUES, REQUIRED, ROOT, Rendered, render

BUILD_TIMEOUT = 1800  # seconds: a first build of Helm on a busy 2-core machine


@pytest.fixture(scope="session")
def helm() -> str:
    try:
        done = subprocess.run(
            [str(ROOT / "scripts" / "helm")],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        unavailable(f"scripts/helm did not build Helm within {BUILD_TIMEOUT} s")
    if done.returncode != 0:
        unavailable(f"no helm: scripts/helm failed:\n{done.stderr.strip()[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def defaults(helm: str) -> Rendered:
    """The chart with its defaults and only the values it requires."""
    return render(helm, sets=REQUIRED)


@pytest.fixture(scope="session")
def full(helm: str) -> Rendered:
    return render(helm, [FULL_VALUES])
