"""The Pulsar client's own log lines, told through pulsarjobs' structured logs.

The C++ client writes its lines into a pipe (a `pulsar.FileLogger` on the pipe's write end) and a
thread of ours reads them and logs them with structlog, so `--log-format json` stays JSON.
Not a Python `logging.Logger`: with one, the C++ client calls into Python (taking the GIL on its
own threads) for every line, debug ones included, which halves throughput, and it may do so while
the interpreter exits. With a FileLogger, the client drops debug lines itself and never runs Python.

The C++ client keeps one logger for the whole process: the first client created with a logger
decides it, later clients' loggers are ignored. Hence one sink per process.

While the broker is down, the client retries every few hundred milliseconds and logs each failure:
we tell the first failure per broker address as one warning and hide the rest, with what follows
from them, until a producer or consumer is created on that broker again; then we tell it is back.
Not at "Connected to broker": that line comes once the TCP connection is up, and a broker still
starting accepts those and then leaves the client's handshake unanswered.

The client retries all it logs as failing; what does fail for good reaches pulsarjobs as an
exception. Its errors are therefore our warnings.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pulsar
import structlog

from pulsarjobs.logs import writes

log = structlog.get_logger("pulsarjobs.client")

# "2026-01-02 10:00:00.123 ERROR [1401] ClientConnection:485 | [<none> -> pulsar://h:6650] ..."
LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+)\s+\[\d+\] (?P<source>\S+) \| (?P<message>.*)$")
# The connection a line is about: "[local -> remote]"; remote is a URL before the socket connects.
PEER = re.compile(r"\[(?P<local>\S+) -> (?P<remote>\S+)\]")
# A connection that failed: refused (or any socket error), or a handshake left unanswered.
CONNECT_FAILED = ("Failed to establish connection to", "was not established in")
# The broker serves again: it registered a producer or consumer of ours.
SERVES = ("Created producer on broker", "Created consumer on broker")
# Warnings that are pulsarjobs working as meant, not faults: something we closed ourselves (a
# TableView's reader, a producer closed twice at exit); a standby scheduler's wait for the
# exclusive leader producer timing out; a key lock another process holds (ProducerBusy).
ROUTINE = (
    "was interrupted: AlreadyClosed",
    "Failed to close producer: AlreadyClosed",
    "Failed to close producer: NotConnected",  # closing while the broker is away: nothing left
    "Failed to close consumer: AlreadyClosed",
    "Cancel the pending reconnection due to the start timeout",
    "ProducerBusy",
)
# An encrypted message this consumer cannot decrypt (no key reader, or the wrong private key):
# the client keeps it from us, so only its log can tell. Said as an error, once a minute.
UNDECRYPTABLE = ("CryptoKeyReader is not implemented", "Failed to decrypt")
NO_KEY = (
    "an end-to-end encrypted job cannot be decrypted here: set PULSARJOBS_ENCRYPTION_PRIVATE_KEY "
    "to the private key of the producers' public key (see docs/security.md). The job stays "
    "stored, held by this worker until it stops, then goes to a worker that has the key"
)
# A repeated client warning from one place in its code is told at most once per interval.
REPEAT_INTERVAL = 60.0


class ClientLog:
    """Turns the client's lines into pulsarjobs log events; one per process (see `sink`)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._down_since: dict[str, float] = {}  # broker address -> when it was first refused
        self._told_at: dict[str, float] = {}  # client source (File:line) -> when last told
        self._hidden: dict[str, int] = {}  # client source -> lines not told since then

    def handle(self, line: str) -> None:
        parsed = LINE.match(line.rstrip("\n"))
        if parsed is None:  # a continuation of a multi-line message
            if writes(logging.DEBUG):
                log.debug(line.rstrip("\n"), source="pulsar-client")
            return
        level, source, message = parsed["level"], parsed["source"], parsed["message"]
        peer = PEER.search(message)
        if peer and source.startswith("ClientConnection") and contains(message, CONNECT_FAILED):
            reason = message[peer.end() :].strip().rpartition(": ")[2]  # "Connection refused"
            self._failed(address(peer["remote"]), reason)
        elif peer and contains(message, SERVES):
            self._serves(address(peer["remote"]))
        elif contains(message, UNDECRYPTABLE):
            self._tell(source, NO_KEY, error=message)
        elif level in ("WARN", "ERROR") and not self._down_since and not contains(message, ROUTINE):
            self._tell(source, message)
        elif writes(logging.DEBUG):  # routine lines, and an outage's consequences once told
            log.debug(message, source=source, client_level=level)

    def _failed(self, broker: str, error: str) -> None:
        if broker in self._down_since:
            return
        self._down_since[broker] = self._clock()
        log.warning(
            "cannot reach the Pulsar broker; the client keeps retrying", broker=broker, error=error
        )

    def _serves(self, broker: str) -> None:
        for down in [down for down in self._down_since if same_endpoint(down, broker)]:
            since = self._down_since.pop(down)
            log.info(
                "connection to the broker is back",
                broker=down,
                down_for=round(self._clock() - since, 1),
            )

    def _tell(self, source: str, message: str, error: str | None = None) -> None:
        """Log a client line, at most once a minute per source; with `error` (the client's
        line), `message` is ours, told as an error."""
        now = self._clock()
        if now - self._told_at.get(source, -REPEAT_INTERVAL) < REPEAT_INTERVAL:
            self._hidden[source] = self._hidden.get(source, 0) + 1
            return
        self._told_at[source] = now
        repeated = self._hidden.pop(source, 0)
        extra = {"repeated": repeated} if repeated else {}
        if error is not None:
            log.error(message, source=source, error=error, **extra)
        else:
            log.warning(message, source=source, **extra)


def contains(message: str, signs: tuple[str, ...]) -> bool:
    return any(sign in message for sign in signs)


def address(remote: str) -> str:
    """host:port of a client's remote, given as a URL (`pulsar://h:6650`) or a socket address."""
    return remote.partition("://")[2] or remote


def same_endpoint(configured: str, connected: str) -> bool:
    """Whether `connected` (an IP:port) is the broker `configured` (host:port) names."""
    if configured == connected:
        return True
    host, _, port = configured.rpartition(":")
    ip, _, connected_port = connected.rpartition(":")
    if port != connected_port:
        return False
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(host.strip("[]"), int(port))}
    except (OSError, ValueError):
        return False
    return ip.strip("[]") in resolved


_sink: Any = None
_sink_lock = threading.Lock()


def sink() -> Any:
    """The logger to give every pulsar.Client of this process: a FileLogger on a pipe whose
    lines a daemon thread logs; the console at Warn where no /dev/fd names the pipe."""
    global _sink
    with _sink_lock:
        if _sink is None:
            _sink = open_sink()
        return _sink


def open_sink() -> Any:
    read_end, write_end = os.pipe()
    path = f"/dev/fd/{write_end}"
    if not Path(path).exists():
        os.close(read_end)
        os.close(write_end)
        return pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn)
    reader = threading.Thread(
        target=read_lines, args=(read_end,), name="pulsarjobs-client-log", daemon=True
    )
    reader.start()
    # The write end stays open for the process's life: each client's FileLogger opens the path
    # anew, and a closed descriptor's number may name another file by then. Info, not Warn:
    # "Connected to broker", which ends an outage, is an info line.
    return pulsar.FileLogger(pulsar.LoggerLevel.Info, path)


def read_lines(read_end: int) -> None:
    client_log = ClientLog()
    with os.fdopen(read_end, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                client_log.handle(line)
            except Exception:  # a line we cannot tell must not end the telling of the next ones
                continue


def silent_logger() -> Any:
    """A logger that drops the Pulsar client's lines: commands report failures themselves.
    (A Python logger would do too, but the client may crash logging to it at exit.)"""
    return pulsar.FileLogger(pulsar.LoggerLevel.Error, os.devnull)
