"""`pulsarjobs broker start --journal-sync`: the bookie fsyncs its journal before it
acknowledges a write."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pulsarjobs.broker import LocalBroker


def journal_sync_data(broker: LocalBroker) -> str:
    """The bookie's value: the only one in the file (BookKeeper would read the first)."""
    broker._write_config()
    lines = broker.conf_file.read_text().splitlines()
    (line,) = [line for line in lines if line.startswith("journalSyncData=")]
    return line.split("=", 1)[1]


def test_the_journal_is_synced_only_when_asked(tmp_path: Path) -> None:
    assert journal_sync_data(LocalBroker(data_dir=tmp_path / "default")) == "false"
    assert journal_sync_data(LocalBroker(data_dir=tmp_path / "sync", journal_sync=True)) == "true"


def test_start_has_the_option() -> None:
    from pulsarjobs.cli.main import app

    shown = CliRunner().invoke(app, ["broker", "start", "--help"], terminal_width=200)
    assert "--journal-sync" in shown.output


def test_a_setting_given_replaces_the_template_line_the_bookie_would_read_first(
    tmp_path: Path,
) -> None:
    broker = LocalBroker(data_dir=tmp_path, settings={"dbStorage_writeCacheMaxSizeMb": "8"})
    broker._write_config()
    lines = broker.conf_file.read_text().splitlines()
    assert [line for line in lines if line.startswith("dbStorage_writeCacheMaxSizeMb=")] == [
        "dbStorage_writeCacheMaxSizeMb=8"
    ]
