"""Server fan-out with fake transports: a room message is rendered once per door
variant by one member's door, and that door is never the sender's (a sender's
door may render its own message differently: the web door marks it as the
reader's own, an IRC door holds it back inside a labeled response)."""

from __future__ import annotations

import asyncio

from fakeconn import three_connections
from salas.store.memory import MemoryStore


async def test_a_sender_door_never_renders_the_batch_for_the_others() -> None:
    store = MemoryStore()
    _, conns, transports = three_connections(store)
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
