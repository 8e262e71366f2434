"""The store's interface, and the history query rules every store shares.

A store keeps what outlives the process: accounts, rooms, and the history of
rooms and private conversations. The server owns one and talks to it in three
ways:

* ``await open()`` and ``load()`` at start, and ``recent()`` when a room's
  tail is first needed (on the event loop, small reads; ``load()`` and
  ``recent()`` are synchronous, so a store that must await its reads does
  them in ``open()``);
* ``submit(seq, records)`` once per loop turn with the hub's journal; the
  store calls ``on_written(seq, error)`` when that turn is safe (or failed),
  and only then does the server let anyone see that turn's output;
* ``query(wanted, reply)``: answered after everything submitted before it is
  written, so an answer never misses a message its asker has already seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from salas.core.commands import Bound, HistoryMode
from salas.core.events import (
    HistoryReply,
    HistoryTargets,
    HistoryWanted,
    Message,
    Private,
    TargetsWanted,
)
from salas.core.records import Loaded, Record

#: Called on the event loop: (last seq written, None) or (seq, why it failed).
OnWritten = Callable[[int, str | None], None]
Reply = Callable[[HistoryReply | HistoryTargets], None]


class StoreError(Exception):
    """The store can't be opened or used; the text says why, for the operator."""


class Store(Protocol):
    async def open(self) -> None:
        """Whatever start-up needs to await (a store on a network reads here
        all that ``load()`` and ``recent()`` will be asked for)."""
        ...

    def load(self) -> Loaded: ...

    def recent(self, room_id: int, room_name: str, limit: int) -> list[Message]: ...

    def start(self, loop: asyncio.AbstractEventLoop, on_written: OnWritten) -> None: ...

    def submit(self, seq: int, records: list[Record]) -> None: ...

    def query(self, wanted: HistoryWanted | TargetsWanted, reply: Reply) -> None: ...

    def prune(self, now: float) -> None:
        """Apply the retention settings (queued behind pending writes)."""
        ...

    async def close(self) -> None:
        """Write what is pending, then let go of every file."""
        ...


M = TypeVar("M", Message, Private)


def is_after(item: Message | Private, b: Bound) -> bool:
    return item.id > b.id if b.id is not None else item.time > (b.time or 0.0)


def is_before(item: Message | Private, b: Bound) -> bool:
    return item.id < b.id if b.id is not None else item.time < (b.time or 0.0)


def ascending(start: Bound, end: Bound, time_of: Callable[[int], float | None]) -> bool:
    """Does ``between start end`` run forwards in time? Bounds of two kinds
    (a message id and a time) compare by the time of that message
    (``time_of``); forwards when it isn't there."""
    if start.id is not None and end.id is not None:
        return start.id <= end.id
    first, last = start.time, end.time
    if start.id is not None:
        first = time_of(start.id)
    elif end.id is not None:
        last = time_of(end.id)
    if first is not None and last is not None:
        return first <= last
    return True


def select(
    items: Sequence[M],
    mode: HistoryMode,
    start: Bound | None,
    end: Bound | None,
    limit: int,
) -> list[M]:
    """IRCv3 CHATHISTORY's selection over ``items`` (oldest first), oldest first.

    The rule book for every store: the SQLite store's queries must agree with it.
    """
    if limit <= 0:
        return []
    if mode == "latest":
        cand = list(items) if start is None else [i for i in items if is_after(i, start)]
        return cand[-limit:]
    if start is None:
        return []
    if mode == "before":
        return [i for i in items if is_before(i, start)][-limit:]
    if mode == "after":
        return [i for i in items if is_after(i, start)][:limit]
    if mode == "around":
        older = [i for i in items if is_before(i, start)]
        newer = [i for i in items if not is_before(i, start)]
        half = limit // 2
        take_old = older[-half:] if half else []
        return take_old + newer[: limit - len(take_old)]
    # between
    if end is None:
        return []
    at = {i.id: i.time for i in items} if (start.id is None) != (end.id is None) else {}
    if ascending(start, end, at.get):
        return [i for i in items if is_after(i, start) and is_before(i, end)][:limit]
    return [i for i in items if is_before(i, start) and is_after(i, end)][-limit:]
