"""A TCP proxy on 127.0.0.1 we can cut or make hang, to fake database outages.

The shared PostgreSQL server must never be stopped (others use it), so the
writer under test talks to it through this proxy instead.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards 127.0.0.1:<ephemeral> to a target; ``cut``/``hang``/``restore``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "up"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, database: str = "test", query: str = "") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}{query}"

    def cut(self) -> None:
        """Drop every open connection and refuse new ones (server 'down')."""
        self.mode = "cut"
        for writer in list(self._writers):
            writer.transport.abort()

    def hang(self) -> None:
        """Keep connections open but forward nothing (server 'slow')."""
        self.mode = "hang"

    def restore(self) -> None:
        self.mode = "up"

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._links):
            task.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._links.add(task)
            task.add_done_callback(self._links.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                while self.mode == "hang":
                    await asyncio.sleep(0.02)
                if self.mode == "cut":
                    break
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(sink)
            with contextlib.suppress(Exception):
                sink.transport.abort()
