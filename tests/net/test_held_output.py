"""The server and its store, in one process over real loopback sockets: output
waits for the store to keep what it carries, in order, and a store that stalls
stops the server reading instead of filling its memory.

The store here is a stand-in whose writes complete only when the test says so,
which is the one thing a real SQLite file can't be made to do on cue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import salas.net.server as server_mod
from salas.config import from_dict
from salas.core.events import HistoryWanted, TargetsWanted
from salas.core.hub import Hub
from salas.core.records import Loaded, Record
from salas.net.doors import door_factories
from salas.net.server import Server
from salas.store.base import OnWritten
from support import TIME


class ManualStore:
    """Writes at once while ``auto``; else keeps submitted turns until ``release()``."""

    def __init__(self) -> None:
        self.turns: list[tuple[int, list[Record]]] = []
        self.on_written: OnWritten | None = None
        self.auto = True

    def load(self) -> Loaded:
        return Loaded()

    def recent(self, room_id: int, room_name: str, limit: int) -> list[object]:
        return []

    def start(self, loop: asyncio.AbstractEventLoop, on_written: OnWritten) -> None:
        self.on_written = on_written

    def submit(self, seq: int, records: list[Record]) -> None:
        if self.auto and self.on_written is not None:
            self.on_written(seq, None)
            return
        self.turns.append((seq, records))

    def release(self) -> None:
        assert self.on_written is not None
        if self.turns:
            self.on_written(self.turns[-1][0], None)

    def fail(self, why: str) -> None:
        """The last commit failed: the store keeps the records to try again."""
        assert self.on_written is not None and self.turns
        self.on_written(self.turns[-1][0], why)

    def recover(self) -> None:
        """A retry wrote everything kept (the writer says so with turn 0)."""
        assert self.on_written is not None
        self.auto = True
        self.on_written(0, None)

    def query(self, wanted: HistoryWanted | TargetsWanted, reply: object) -> None:
        return None

    def prune(self, now: float) -> None:
        return None

    async def close(self) -> None:
        return None


async def read_until(reader: asyncio.StreamReader, needle: bytes) -> bytes:
    return await asyncio.wait_for(reader.readuntil(needle), 3.0 * TIME)


@pytest.fixture
async def running() -> AsyncIterator[tuple[Server, ManualStore, int]]:
    config = from_dict(
        {"server": {"listen": ["line:127.0.0.1:0"]}, "limits": {"flood_exempt": ["127.0.0.0/8"]}}
    )
    store = ManualStore()
    loop = asyncio.get_running_loop()
    server = Server(config, Hub(seed=1), loop, store)  # type: ignore[arg-type]
    bound = await server.start(door_factories(config))
    yield server, store, bound[0][2]
    store.release()
    await server.shutdown("")


async def test_nobody_sees_a_message_before_the_store_has_it(
    running: tuple[Server, ManualStore, int],
) -> None:
    _, store, port = running
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    await read_until(r1, b"lobby")
    r2, w2 = await asyncio.open_connection("127.0.0.1", port)
    await read_until(r2, b"lobby")
    await read_until(r1, b"joined lobby")
    store.auto = False
    w1.write(b"hello there\n")
    await w1.drain()
    # The message is in the store's hands, not yet kept: the other member waits.
    for _ in range(100):
        if any(records for _, records in store.turns):
            break
        await asyncio.sleep(0.01)
    assert any(records for _, records in store.turns)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(r2.readuntil(b"hello there\n"), 0.3)
    w2.write(b"/echo after\n")  # output of later turns waits behind it, in order
    await w2.drain()
    await asyncio.sleep(0.1)
    store.release()
    got = await read_until(r2, b"after\n")
    assert got.index(b"hello there") < got.index(b"after")
    for w in (w1, w2):
        w.close()


async def test_a_stalled_store_stops_the_reading_not_the_memory(
    running: tuple[Server, ManualStore, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, store, port = running
    monkeypatch.setattr(server_mod, "HELD_LIMIT", 4096)
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    await read_until(r1, b"lobby")
    r2, w2 = await asyncio.open_connection("127.0.0.1", port)
    await read_until(r2, b"lobby")
    await read_until(r1, b"joined lobby")
    store.auto = False
    for i in range(200):
        w1.write(f"line {i} {'x' * 100}\n".encode())
    await w1.drain()
    for _ in range(100):
        if server.reads_paused:
            break
        await asyncio.sleep(0.01)
    assert server.reads_paused
    said = sum(len(records) for _, records in store.turns)
    assert said < 200  # it stopped taking lines in: what is held stays bounded
    store.release()
    # Caught up: reading resumes, and every line arrives, in order.
    seen: list[int] = []
    for _ in range(400):
        if len(seen) == 200:
            break
        if store.turns and not server.reads_paused:
            store.release()
        try:
            line = await asyncio.wait_for(r2.readline(), 0.2)
        except TimeoutError:
            store.release()
            continue
        if line.startswith(b"[") and b"] line " in line:
            seen.append(int(line.split(b"] line ")[1].split()[0]))
    assert seen == list(range(200))
    assert not server.reads_paused
    for w in (w1, w2):
        w.close()


async def test_a_message_the_store_failed_to_keep_is_seen_only_once_it_is_kept(
    running: tuple[Server, ManualStore, int],
) -> None:
    server, store, port = running
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    await read_until(r1, b"lobby")
    r2, w2 = await asyncio.open_connection("127.0.0.1", port)
    await read_until(r2, b"lobby")
    await read_until(r1, b"joined lobby")
    store.auto = False
    w1.write(b"kept later\n")
    await w1.drain()
    for _ in range(100):
        if store.turns:
            break
        await asyncio.sleep(0.01)
    store.fail("database or disk is full")
    assert not server.hub.store_ok
    # Everything else goes on: the server answers, and refuses new messages clearly.
    w2.write(b"/echo still here\nnot now\n")
    await w2.drain()
    got = await read_until(r2, b"try again soon\n")
    assert b"still here" in got and b"kept later" not in got
    assert b"can't keep messages right now" in got
    # The store writes again: the message kept all along is seen now.
    store.recover()
    assert server.hub.store_ok
    await read_until(r2, b"[")
    assert (await read_until(r2, b"\n")).endswith(b"kept later\n")
    for w in (w1, w2):
        w.close()
