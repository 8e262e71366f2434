"""Replies keep the order of the requests when history comes from the store.

A history answer comes later, from the store's thread; what the asker is sent
meanwhile waits for it (``Connection.asked``), so a line client's ``/echo``
after ``/history`` is a barrier. The store here answers when the test says."""

from __future__ import annotations

import asyncio

from fakeconn import SelfishDoor, three_connections
from salas.core import commands as c
from salas.core.events import (
    Echoed,
    Event,
    HistoryReply,
    HistoryTargets,
    HistoryWanted,
    TargetsWanted,
)
from salas.net.server import Connection, Server
from salas.store.base import Reply
from salas.store.memory import MemoryStore


class LateStore(MemoryStore):
    """Answers history questions when told to (``answer``), in the order asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[HistoryWanted | TargetsWanted, Reply]] = []

    def query(self, wanted: HistoryWanted | TargetsWanted, reply: Reply) -> None:
        self.asked.append((wanted, reply))

    def answer(self) -> None:
        wanted, reply = self.asked.pop(0)
        assert isinstance(wanted, HistoryWanted)
        reply(HistoryReply(wanted.target, True, (), "request", wanted.tag))


class SayingDoor(SelfishDoor):
    def render(self, event: Event) -> bytes:
        if isinstance(event, Echoed):
            return f"echo {event.text}\n".encode()
        if isinstance(event, HistoryReply | HistoryTargets):
            return f"history {event.tag}\n".encode()
        return super().render(event)


async def turns() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def ann_in_r() -> tuple[LateStore, Server, Connection, bytearray]:
    """A server on a LateStore; ann has joined r; what she is sent from now on."""
    store = LateStore()
    server, conns, transports = three_connections(store, SayingDoor)
    await turns()
    conns[0].data_received(b"/join r\n")
    await turns()
    transports[0].written.clear()
    return store, server, conns[0], transports[0].written


async def test_replies_wait_for_the_history_answers_before_them() -> None:
    store, server, ann, written = await ann_in_r()
    for item in (
        c.FetchHistory("r", True, 5, tag="first"),
        c.Echo("one"),
        c.FetchHistory("r", True, 5, tag="second"),
        c.Echo("two"),
    ):
        server.run(ann, item)
    await turns()
    assert written == b""  # everything waits for the first answer
    store.answer()
    await turns()
    assert written == b"history first\necho one\n"
    store.answer()
    await turns()
    assert written == b"history first\necho one\nhistory second\necho two\n"


async def test_what_waits_for_an_answer_is_bounded_by_the_send_queue() -> None:
    store, server, ann, written = await ann_in_r()
    server.run(ann, c.FetchHistory("r", True, 5, tag="slow"))
    for i in range(server.sendq // 10 + 10):  # more than a send queue of replies
        server.run(ann, c.Echo(f"{i:08d}"))
    await turns()
    assert ann.asked is None  # order given up rather than memory
    assert written.startswith(b"echo 00000000\n")
    store.answer()
    await turns()
    assert written.endswith(b"history slow\n")  # still answered


async def test_room_messages_wait_behind_an_answer_like_any_other_output() -> None:
    store, server, ann, written = await ann_in_r()
    bob, cy = server.conns[2], server.conns[3]
    for conn in (bob, cy):
        conn.data_received(b"/join r\n")
    await turns()
    cy_got = cy.transport.written  # type: ignore[attr-defined]
    cy_got.clear()
    written.clear()
    server.run(ann, c.FetchHistory("r", True, 5, tag="first"))
    server.run(ann, c.Echo("one"))
    bob.data_received(b"hi\nthere\n")
    await turns()
    assert written == b""  # bob's messages come after what ann asked for first
    assert cy_got == b"u2: hi\nu2: there\n"  # nobody else waits
    store.answer()
    await turns()
    assert written == b"history first\necho one\nu2: hi\nu2: there\n"
    bob.data_received(b"again\n")
    await turns()
    assert written.endswith(b"u2: there\nu2: again\n")  # and after it, as usual


async def test_a_question_asked_mid_batch_splits_the_room_batch() -> None:
    store, server, ann, written = await ann_in_r()
    bob = server.conns[2]
    bob.data_received(b"/join r\n")
    await turns()
    written.clear()
    server.run(bob, c.Say("r", "before"))
    server.run(ann, c.FetchHistory("r", True, 5, tag="first"))
    server.run(bob, c.Say("r", "after"))
    await turns()
    assert written == b"u2: before\n"
    store.answer()
    await turns()
    assert written == b"u2: before\nhistory first\nu2: after\n"
