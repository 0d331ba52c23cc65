"""Finding a JDK that runs the Pulsar broker well.

Pulsar 4.0 needs Java 17 or newer and recommends 21. OpenJDK 17 before 17.0.17 carries
JDK-8351933 (a ForkJoinPool accounting bug that can stall the broker's async work), so such a
JDK is taken only when nothing better is installed. `PULSARJOBS_JAVA_HOME` overrides the search.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pulsarjobs.errors import ConfigurationError

MINIMUM_MAJOR = 17
FIXED_17 = (17, 0, 17)
JVM_DIRS = (Path("/usr/lib/jvm"), Path("/opt/java"), Path("/Library/Java/JavaVirtualMachines"))


@dataclass(frozen=True, order=True)
class Jdk:
    version: tuple[int, ...]
    home: Path

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def preference(self) -> int:
        """Lower is better: 21, then a fixed 17, then newer releases, then an affected 17."""
        major = self.version[0]
        if major == 21:
            return 0
        if major == 17:
            return 1 if self.version >= FIXED_17 else 3
        return 2


def find_jdk(candidates: Iterable[Path] | None = None) -> Jdk:
    """The best installed JDK, or a ConfigurationError that says how to get one."""
    explicit = os.environ.get("PULSARJOBS_JAVA_HOME")
    if explicit and candidates is None:
        jdk = inspect_home(Path(explicit))
        if jdk is None or jdk.version[0] < MINIMUM_MAJOR:
            raise ConfigurationError(
                f"PULSARJOBS_JAVA_HOME={explicit} is not a JDK {MINIMUM_MAJOR}+ "
                "(no usable bin/java there): point it at one, or unset it."
            )
        return jdk
    homes = candidate_homes() if candidates is None else candidates
    found = {jdk for home in homes if (jdk := inspect_home(home)) is not None}
    usable = [jdk for jdk in found if jdk.version[0] >= MINIMUM_MAJOR]
    if not usable:
        raise ConfigurationError(
            f"Java {MINIMUM_MAJOR} or newer was not found: install a JDK "
            "(e.g. `apt-get install openjdk-17-jre-headless`) or set PULSARJOBS_JAVA_HOME."
        )
    return min(usable, key=lambda jdk: (jdk.preference, tuple(-part for part in jdk.version)))


def candidate_homes() -> list[Path]:
    homes: list[Path] = []
    if java_home := os.environ.get("JAVA_HOME"):
        homes.append(Path(java_home))
    if java_on_path := shutil.which("java"):
        homes.append(Path(java_on_path).resolve().parent.parent)
    for root in JVM_DIRS:
        if root.is_dir():
            homes.extend(sorted(root.iterdir()))
            homes.extend(sorted(root.glob("*/Contents/Home")))
    return homes


def inspect_home(home: Path) -> Jdk | None:
    java = home / "bin" / "java"
    if not java.is_file() or not os.access(java, os.X_OK):
        return None
    version = release_version(home) or reported_version(java)
    return Jdk(version=version, home=home.resolve()) if version else None


def release_version(home: Path) -> tuple[int, ...] | None:
    """The version from the JDK's `release` file, which every modern JDK ships."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="([^"]+)"', text, re.MULTILINE)
    return parse_version(match.group(1)) if match else None


def reported_version(java: Path) -> tuple[int, ...] | None:
    try:
        done = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "([^"]+)"', done.stderr)
    return parse_version(match.group(1)) if match else None


def parse_version(text: str) -> tuple[int, ...] | None:
    parts = re.findall(r"\d+", text.split("+")[0].split("-")[0])
    if not parts:
        return None
    numbers = tuple(int(part) for part in parts[:3])
    if numbers[0] == 1 and len(numbers) > 1:  # "1.8.0" style
        numbers = numbers[1:]
    return numbers + (0,) * (3 - len(numbers))
