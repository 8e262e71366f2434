"""A burst's stragglers are kept with it (``Server.store_written``).

When the store reports a turn kept while a few more records (a burst's tail)
wait for the next commit, the turn's output waits for theirs, once, and each
member gets both in one write. The store here commits when the test says, as
the writer thread would when it gets to it; the transports count writes."""

from __future__ import annotations

import asyncio

from fakeconn import FakeTransport, three_connections
from salas.core.records import Record
from salas.net.server import Connection, Server
from salas.store.memory import MemoryStore


class HandStore(MemoryStore):
    """Keeps turns when told to (``commit``), not as they come."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[int] = []

    def submit(self, seq: int, records: list[Record]) -> None:
        self.waiting.append(seq)

    def commit(self, error: str | None = None) -> None:
        seq = self.waiting[-1]
        self.waiting.clear()
        assert self._on_written is not None
        self._on_written(seq, error)


async def turns() -> None:
    """Let the loop run what is scheduled (the end-of-turn flush)."""
    for _ in range(3):
        await asyncio.sleep(0)


async def room_of_three() -> tuple[Server, HandStore, list[Connection], list[FakeTransport]]:
    store = HandStore()
    server, conns, transports = three_connections(store)
    for conn in conns:
        conn.data_received(b"/join r\n")
        await turns()
        while store.waiting:
            store.commit()
            await turns()
    for t in transports:
        t.written.clear()
        t.writes = 0
    return server, store, conns, transports


async def a_burst_with_a_straggler(store: HandStore, conns: list[Connection]) -> None:
    """u2 speaks and its turn goes to the store; u3's message comes in the
    same loop turn as the store's answer."""
    _, two, three = conns
    two.data_received(b"one\n")
    await turns()  # flushed: the turn waits for the store
    assert store.waiting
    three.data_received(b"two\n")  # the straggler: its turn's flush is scheduled
    store.commit()  # the first turn is kept...


async def test_a_straggler_goes_out_with_its_burst_in_one_write() -> None:
    _, store, conns, (t1, t2, t3) = await room_of_three()
    await a_burst_with_a_straggler(store, conns)
    assert t1.writes == 0  # ...and waits for the straggler's turn
    assert store.waiting  # which went to the store at once
    store.commit()
    assert bytes(t1.written).decode().splitlines() == ["u2: one", "u3: two"]
    assert t1.writes == 1
    assert bytes(t2.written).decode().splitlines() == ["u3: two"]
    assert bytes(t3.written).decode().splitlines() == ["u2: one"]
    await turns()
    assert not store.waiting and t1.writes == 1  # nothing more was held


async def test_if_the_stragglers_commit_fails_the_kept_turn_still_goes_out() -> None:
    server, store, conns, (t1, _, _) = await room_of_three()
    await a_burst_with_a_straggler(store, conns)
    store.commit("disk full")
    assert bytes(t1.written).decode().splitlines() == ["u2: one"]  # kept: seen
    assert not server.store_ok
    assert store._on_written is not None
    store._on_written(0, None)  # the writer's retry succeeded
    assert bytes(t1.written).decode().splitlines() == ["u2: one", "u3: two"]


async def test_only_a_few_records_make_a_kept_turn_wait() -> None:
    _, store, conns, (t1, _, _) = await room_of_three()
    _, two, three = conns
    two.data_received(b"one\n")
    await turns()
    three.data_received(b"".join(b"more %d\n" % i for i in range(20)))  # not stragglers
    store.commit()
    assert bytes(t1.written).decode().splitlines() == ["u2: one"]
