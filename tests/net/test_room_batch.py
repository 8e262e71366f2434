"""Server fan-out with fake transports: a room message is rendered once per door
variant by one member's door, and that door is never the sender's (a sender's
door may render its own message differently: the web door marks it as the
reader's own, an IRC door holds it back inside a labeled response)."""

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
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", self.port) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

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


async def test_a_sender_door_never_renders_the_batch_for_the_others() -> None:
    loop = asyncio.get_running_loop()
    config = Config()
    config.limits.flood_exempt = ["127.0.0.0/8"]
    store = MemoryStore()
    server = Server(config, Hub(HubSettings()), loop, store)
    store.start(loop, server.store_written)
    conns: list[Connection] = []
    transports: list[FakeTransport] = []
    for port in (1, 2, 3):
        conn = Connection(server, SelfishDoor)
        transport = FakeTransport(port)
        conn.connection_made(transport)
        conns.append(conn)
        transports.append(transport)
    for conn in conns:
        conn.data_received(b"/join r\n")
    for _ in range(5):
        await asyncio.sleep(0)
    for t in transports:
        t.written.clear()
    a, b, _ = conns
    # One loop turn: u2 speaks (the batch is rendered by u1's door), then u1 does.
    b.data_received(b"from two\n")
    a.data_received(b"from one\n")
    for _ in range(5):
        await asyncio.sleep(0)
    got = [bytes(t.written).decode().splitlines() for t in transports]
    assert got[0] == ["u2: from two"]
    assert got[1] == ["u1: from one"]
    assert got[2] == ["u2: from two", "u1: from one"]  # not "mine: from one"
    await store.close()
