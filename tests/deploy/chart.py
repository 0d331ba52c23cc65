"""The Helm chart (deploy/helm/pulsarjobs), rendered by a real helm, and what it rendered."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "pulsarjobs"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
RELEASE = "pulsarjobs"
# The values the chart cannot do without; everything else stays at its default.
REQUIRED = {
    "app": "myproject.jobs:app",
    "image.repository": "registry.example.com/myproject",
    "dashboard.token.existingSecret": "pulsarjobs-dashboard",
}


@dataclass(frozen=True)
class Rendered:
    text: str  # what `helm template` printed
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        [found] = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        return found


def helm_args(values: Sequence[Path] = (), sets: Mapping[str, str] | None = None) -> list[str]:
    """`-f FILE` and `--set KEY=VALUE` arguments."""
    args = [arg for path in values for arg in ("-f", str(path))]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    return args


def template(
    helm: str, values: Sequence[Path] = (), sets: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, "template", RELEASE, str(CHART), *helm_args(values, sets)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def render(
    helm: str, values: Sequence[Path] = (), sets: Mapping[str, str] | None = None
) -> Rendered:
    done = template(helm, values, sets)
    assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
    objects = [o for o in yaml.safe_load_all(done.stdout) if o]
    return Rendered(done.stdout, objects)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def option(args: Sequence[str], name: str) -> str:
    """The value after `name` in a command line."""
    return args[list(args).index(name) + 1]
