"""docs/deploy/pulsarjobs.yaml is what the chart renders today from ci/full-values.yaml."""

from __future__ import annotations

from tests.deploy.chart import CHART, FULL_VALUES, RELEASE, ROOT, Rendered

SHOWN = ROOT / "docs" / "deploy" / "pulsarjobs.yaml"
REGENERATE = (
    f"$(scripts/helm) template {RELEASE} {CHART.relative_to(ROOT)} "
    f"-f {FULL_VALUES.relative_to(ROOT)} > {SHOWN.relative_to(ROOT)}"
)


def test_the_manifests_in_the_docs_are_what_the_chart_renders(full: Rendered) -> None:
    assert SHOWN.read_text() == full.text, f"the chart changed: regenerate them with\n{REGENERATE}"
