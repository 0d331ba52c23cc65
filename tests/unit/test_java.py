from __future__ import annotations

from pathlib import Path

import pytest

from pulsarjobs.broker.java import find_jdk, parse_version
from pulsarjobs.errors import ConfigurationError


def fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\nexit 0\n")
    java.chmod(0o755)
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("17.0.15", (17, 0, 15)),
        ("21", (21, 0, 0)),
        ("25.0.3+9-LTS", (25, 0, 3)),
        ("1.8.0", (8, 0, 0)),
    ],
)
def test_versions_are_read_as_jdks_print_them(text: str, expected: tuple[int, ...]) -> None:
    assert parse_version(text) == expected


def test_prefers_21_then_a_fixed_17_then_newer_and_avoids_affected_17(tmp_path: Path) -> None:
    affected = fake_jdk(tmp_path, "jdk17-old", "17.0.15")
    newer = fake_jdk(tmp_path, "jdk25", "25.0.3")
    fixed = fake_jdk(tmp_path, "jdk17-new", "17.0.17")
    lts = fake_jdk(tmp_path, "jdk21", "21.0.8")
    assert find_jdk([affected, newer, fixed, lts]).home == lts.resolve()
    assert find_jdk([affected, newer, fixed]).home == fixed.resolve()
    assert find_jdk([affected, newer]).home == newer.resolve()
    assert find_jdk([affected]).home == affected.resolve()


def test_too_old_or_no_java_says_how_to_get_one(tmp_path: Path) -> None:
    old = fake_jdk(tmp_path, "jdk11", "11.0.20")
    with pytest.raises(
        ConfigurationError, match=r"Java 17 or newer was not found.*PULSARJOBS_JAVA_HOME"
    ):
        find_jdk([old, tmp_path / "missing"])


def test_explicit_java_home_must_be_a_jdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSARJOBS_JAVA_HOME", str(tmp_path))
    with pytest.raises(ConfigurationError, match="is not a JDK 17"):
        find_jdk()
    monkeypatch.setenv("PULSARJOBS_JAVA_HOME", str(fake_jdk(tmp_path, "jdk25", "25.0.1")))
    assert find_jdk().version == (25, 0, 1)
