"""The broker's jars: resolved once from Maven Central into a per-user cache.

Maven downloads into a repository of our own under the cache and writes the classpath to a file;
later starts read that file and need no network. `PULSARJOBS_PULSAR_HOME` points at an existing
Pulsar installation instead, whose `lib/` is used as it is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from pulsarjobs.broker.templates import render
from pulsarjobs.errors import BrokerError, ConfigurationError

PULSAR_VERSION = "4.0.7"
MAVEN_CENTRAL = "https://repo.maven.apache.org/maven2"

Progress = Callable[[str], None]


def cache_root() -> Path:
    if explicit := os.environ.get("PULSARJOBS_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pulsarjobs"


def pulsar_home() -> Path | None:
    explicit = os.environ.get("PULSARJOBS_PULSAR_HOME")
    return Path(explicit) if explicit else None


def classpath(version: str = PULSAR_VERSION, progress: Progress | None = None) -> str:
    """The broker's classpath, resolving jars first if they are not cached yet."""
    if (home := pulsar_home()) is not None:
        lib = home / "lib"
        if not any(lib.glob("*.jar")):
            raise ConfigurationError(
                f"PULSARJOBS_PULSAR_HOME={home} has no lib/*.jar: point it at a Pulsar "
                "binary distribution, or unset it to use the managed download."
            )
        return str(lib / "*")
    listing = classpath_file(version)
    if not cached(version):
        resolve(version, progress or (lambda _: None))
    return listing.read_text().strip()


def classpath_file(version: str) -> Path:
    return cache_root() / f"pulsar-{version}" / "classpath.txt"


def cached(version: str) -> bool:
    listing = classpath_file(version)
    if not listing.is_file():
        return False
    jars = listing.read_text().strip().split(os.pathsep)
    return all(Path(jar).is_file() for jar in jars)


def resolve(version: str, progress: Progress) -> None:
    """Download pulsar-broker and its runtime dependencies with Maven."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConfigurationError(
            "Maven (mvn) is needed once to download the Pulsar broker: install it "
            "(e.g. `apt-get install maven`), or set PULSARJOBS_PULSAR_HOME to a Pulsar install."
        )
    target = classpath_file(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    repository = os.environ.get("PULSARJOBS_MAVEN_REPOSITORY", MAVEN_CENTRAL)
    with tempfile.TemporaryDirectory(prefix="pulsarjobs-mvn-") as work:
        project = Path(work)
        (project / "pom.xml").write_text(render("pom.xml", pulsar_version=version))
        (project / "settings.xml").write_text(
            render(
                "settings.xml",
                local_repository=str(cache_root() / "maven-repository"),
                repository_url=repository,
            )
        )
        partial = project / "classpath.txt"
        command = [
            mvn, "--batch-mode", "--settings", "settings.xml",
            "dependency:build-classpath", "-Dmdep.includeScope=runtime",
            f"-Dmdep.outputFile={partial}",
        ]  # fmt: skip
        run_maven(command, project, progress)
        if not partial.is_file():
            raise BrokerError("Maven finished without writing the broker's classpath.")
        shutil.move(str(partial), target)


def run_maven(command: list[str], cwd: Path, progress: Progress) -> None:
    log: list[str] = []
    downloads = 0
    with subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as maven:
        assert maven.stdout is not None
        for line in maven.stdout:
            log.append(line.rstrip())
            if "Downloaded from" in line:
                downloads += 1
                progress(f"downloading the Pulsar broker: {downloads} files")
    if maven.returncode != 0:
        errors = [line for line in log if line.startswith("[ERROR]")] or log[-5:]
        reason = re.sub(r"^\[ERROR\]\s*", "", errors[0]) if errors else "no output"
        raise BrokerError(
            f"Maven could not download the Pulsar broker: {reason} "
            "(check the network, or set PULSARJOBS_MAVEN_REPOSITORY to a reachable mirror)."
        )
