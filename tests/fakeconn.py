"""Connections without sockets, for the server's fan-out bookkeeping: a
transport that keeps (and counts) what is written, a door of plain lines
whose room messages say "mine" to their own sender, and a server with three
such connections."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from salas.config import Config
from salas.core import commands as c
from salas.core.events import Event, Message
from salas.core.hub import Hub, HubSettings
from salas.net.server import Connection, Server
from salas.proto.door import Input
from salas.store.memory import MemoryStore


class FakeTransport(asyncio.Transport):
    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.written = bytearray()
        self.writes = 0
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", self.port) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data
        self.writes += 1

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class SelfishDoor:
    """Lines in; a room message rendered as "mine" when its sender is this connection."""

    door: ClassVar[str] = "selfish"
    variant: object = "selfish"
    tick_interval: float | None = None

    def __init__(self, sid: int, host: str, port: int) -> None:
        self.sid, self.host, self.port = sid, host, port

    def start(self) -> list[Input]:
        # No echo: an echo is output of its own, which would close the batch.
        return [c.Register(f"u{self.port}", self.door, self.host, self.port)]

    def receive_data(self, data: bytes) -> list[Input]:
        out: list[Input] = []
        for line in data.decode().splitlines():
            if line.startswith("/join "):
                out.append(c.Join(line[6:], create=True))
            else:
                out.append(c.Say("r", line))
        return out

    def render(self, event: Event) -> bytes:
        if isinstance(event, Message):
            whose = "mine" if event.sender.sid == self.sid else event.sender.name
            return f"{whose}: {event.text}\n".encode()
        return b""

    def shared_key(self, event: Event) -> object | None:
        return None

    def render_error_close(self, reason: str) -> bytes:
        return b""

    def render_flood_notice(self) -> bytes:
        return b""

    def tick(self, idle: float) -> list[Input]:
        return []


def three_connections(
    store: MemoryStore, door: type[SelfishDoor] = SelfishDoor
) -> tuple[Server, list[Connection], list[FakeTransport]]:
    """A server on ``store`` (started) with three connections on ``door``."""
    config = Config()
    config.limits.flood_exempt = ["127.0.0.0/8"]
    loop = asyncio.get_running_loop()
    server = Server(config, Hub(HubSettings()), loop, store)
    store.start(loop, server.store_written)
    conns, transports = [], []
    for port in (1, 2, 3):
        conn = Connection(server, door)
        transport = FakeTransport(port)
        conn.connection_made(transport)
        conns.append(conn)
        transports.append(transport)
    return server, conns, transports
