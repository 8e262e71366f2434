"""The bus's pure parts, without Redis: what goes into one log entry."""

from __future__ import annotations

import asyncio

import pytest

from salas.config import BusSettings
from salas.core import commands as c
from salas.core import errors as e
from salas.core.oplog import Call, Do, decode
from salas.net.bus import ENTRY_OPS, RedisBus


async def test_an_op_the_log_cannot_carry_is_refused_alone() -> None:
    bus = RedisBus(BusSettings(url="redis://127.0.0.1:1/0"))
    bus.node = 7
    loop = asyncio.get_running_loop()
    good, bad = loop.create_future(), loop.create_future()
    ops = [Do(1, c.Say("#a", "fine")), Call("kill", ("bob", 5, "x")), Call("expire_rooms", ())]
    made = bus._entry(ops, [good, bad, None])
    assert made is not None
    data, futs = made
    entry = decode(data)
    assert entry.node == 7 and entry.seq == 1
    assert entry.ops == (ops[0], ops[2])
    assert futs == [good, None]
    assert isinstance(bad.exception(), e.TryLater)
    assert not good.done()


async def test_nothing_to_write_when_every_op_is_refused() -> None:
    bus = RedisBus(BusSettings(url="redis://127.0.0.1:1/0"))
    bus.node = 7
    fut = asyncio.get_running_loop().create_future()
    assert bus._entry([Call("kill", (1, 2, 3))], [fut]) is None
    with pytest.raises(e.TryLater):
        fut.result()


def test_a_full_entry_stays_under_the_decoder_s_bound() -> None:
    from salas.core.oplog import MAX_ENTRY, Entry, encode

    # The largest op a door makes: call signalling of 16 KiB.
    big = Do(1, c.CallSignal(1, "x" * 16 * 1024))
    assert len(encode(Entry(1, 1, (big,) * ENTRY_OPS))) < MAX_ENTRY
