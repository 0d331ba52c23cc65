"""A TCP proxy on loopback that can cut the network between clients and the broker.

It forwards what comes in on `listen` to `target`, both ways, on an asyncio loop of its own
thread. `blackhole()` makes it swallow every byte from then on, both ways, on open connections
and new ones alike, the way a dead link or a dropped-packets firewall rule does: nothing is
refused, nothing arrives. `reset()` aborts every connection with a TCP reset and forwards
again: what a restarted NAT or load balancer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any

CHUNK = 65_536
CLOSE_WITH_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST


class Proxy:
    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen = listen
        self.target = target
        self.swallowing = False
        self.connections = 0  # accepted so far
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> Proxy:
        self._thread.start()
        self._server = self._call(
            asyncio.start_server(self._accept, self.listen[0], self.listen[1], reuse_address=True)
        )
        return self

    def __exit__(self, *_: object) -> None:
        self.reset()
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def blackhole(self) -> None:
        self.swallowing = True

    def reset(self) -> None:
        """Abort every open connection with a reset; forward new ones again."""
        self.swallowing = False
        self._call(self._reset_all())

    def _call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    async def _reset_all(self) -> None:
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, CLOSE_WITH_RESET)
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            broker_in, broker = await asyncio.open_connection(*self.target)
        except OSError:
            client.transport.abort()
            return
        self._writers |= {client, broker}
        await asyncio.gather(
            self._pump(client_in, broker), self._pump(broker_in, client), return_exceptions=True
        )
        if not self.swallowing:  # a black hole passes on no close: reset() ends these
            for writer in (client, broker):
                self._writers.discard(writer)
                writer.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(CHUNK):
                if not self.swallowing:
                    sink.write(data)
                    await sink.drain()
        finally:
            if not self.swallowing:
                sink.close()  # one side ended: end the other, as the real connection would
