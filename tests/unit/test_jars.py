from __future__ import annotations

from pathlib import Path

import pytest

from pulsarjobs.broker import jars
from pulsarjobs.errors import ConfigurationError


def test_missing_maven_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULSARJOBS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PULSARJOBS_PULSAR_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigurationError, match=r"Maven.*apt-get install maven"):
        jars.classpath("4.0.7")


def test_an_existing_pulsar_install_replaces_the_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lib").mkdir()
    monkeypatch.setenv("PULSARJOBS_PULSAR_HOME", str(tmp_path))
    with pytest.raises(ConfigurationError, match="has no lib"):
        jars.classpath()
    (tmp_path / "lib" / "pulsar-broker.jar").write_bytes(b"")
    assert jars.classpath() == str(tmp_path / "lib" / "*")


def test_a_cache_with_a_missing_jar_is_resolved_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULSARJOBS_CACHE_DIR", str(tmp_path))
    jar = tmp_path / "a.jar"
    jar.write_bytes(b"")
    listing = jars.classpath_file("9.9.9")
    listing.parent.mkdir(parents=True)
    listing.write_text(f"{jar}")
    assert jars.cached("9.9.9")
    jar.unlink()
    assert not jars.cached("9.9.9")
