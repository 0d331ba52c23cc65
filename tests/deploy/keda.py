"""KEDA's own schemas of its objects: the openAPIV3Schema of its CRDs, read from the Go module of
the KEDA release the chart is written for (downloaded once into the per-user cache)."""

from __future__ import annotations

import functools
import zipfile
from typing import Any

import httpx
import yaml

from pulsarjobs.broker.jars import cache_root

KEDA_VERSION = "v2.21.1"
MODULE = "github.com/kedacore/keda/v2"
ZIP_URL = f"https://proxy.golang.org/{MODULE}/@v/{KEDA_VERSION}.zip"
CRDS = {  # kind: its CRD in the module
    "ScaledObject": "config/crd/bases/keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "config/crd/bases/keda.sh_triggerauthentications.yaml",
}
API_VERSION = "keda.sh/v1alpha1"


@functools.cache
def crd_schemas() -> dict[str, dict[str, Any]]:
    """kind -> the openAPIV3Schema of its `v1alpha1` version."""
    schemas = {}
    with zipfile.ZipFile(module_zip()) as module:
        for kind, path in CRDS.items():
            crd = yaml.safe_load(module.read(f"{MODULE}@{KEDA_VERSION}/{path}"))
            [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
            schemas[kind] = version["schema"]["openAPIV3Schema"]
    return schemas


def module_zip() -> str:
    path = cache_root() / f"keda-{KEDA_VERSION}.zip"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")  # renamed once whole: never read half-downloaded
        with httpx.stream("GET", ZIP_URL, follow_redirects=True, timeout=60) as response:
            response.raise_for_status()
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        partial.replace(path)
    return str(path)


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema, refusing fields it does not name, as the API server's strict field validation
    does (`kubectl apply` warns of them, and KEDA would never see them)."""
    copied = {key: value for key, value in schema.items()}
    if "properties" in copied:
        copied["properties"] = {name: strict(s) for name, s in copied["properties"].items()}
        if "additionalProperties" not in copied and not copied.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            copied["additionalProperties"] = False
    if isinstance(copied.get("items"), dict):
        copied["items"] = strict(copied["items"])
    if isinstance(copied.get("additionalProperties"), dict):
        copied["additionalProperties"] = strict(copied["additionalProperties"])
    return copied
