"""A store that keeps history in memory only: for tests, benchmarks without
a disk, and ``[store] url = "memory:"``. Nothing outlives the process."""

from __future__ import annotations

import asyncio
from collections import deque

from salas.core.events import (
    HistoryReply,
    HistoryTargets,
    HistoryWanted,
    Message,
    Private,
    TargetsWanted,
)
from salas.core.model import UserRef
from salas.core.names import fold
from salas.core.records import Loaded, Record
from salas.store.base import OnWritten, Reply, select

#: Messages kept per room (and in all for private ones) when no retention cap is set.
DEFAULT_CAP = 10_000


def private_between(
    p: Private, account: str, other: str, peer: str | None = None, since: float = 0.0
) -> bool:
    """Is ``p`` part of account ``account``'s conversation with ``other``
    (all folded)? ``peer``: the other's account, which then decides for
    messages they sent or got while logged in; ``since``: when ``account`` was made."""
    if p.time < since:
        return False
    s, t = p.sender, p.target
    return (fold(s.account or "") == account and _is_peer(t, other, peer)) or (
        fold(t.account or "") == account and _is_peer(s, other, peer)
    )


def _is_peer(ref: UserRef, other: str, peer: str | None) -> bool:
    if peer is not None and ref.account:
        return fold(ref.account) == peer
    return fold(ref.name) == other


class MemoryStore:
    def __init__(self, per_room: int = 0) -> None:
        self.cap = per_room or DEFAULT_CAP
        self.rooms: dict[int, deque[Message]] = {}
        self.private: deque[Private] = deque(maxlen=self.cap)
        self._on_written: OnWritten | None = None

    async def open(self) -> None:
        return None

    def load(self) -> Loaded:
        return Loaded()

    def recent(self, room_id: int, room_name: str, limit: int) -> list[Message]:
        kept = self.rooms.get(room_id)
        return list(kept)[-limit:] if kept and limit > 0 else []

    def start(self, loop: asyncio.AbstractEventLoop, on_written: OnWritten) -> None:
        self._on_written = on_written

    def submit(self, seq: int, records: list[Record]) -> None:
        for r in records:
            if type(r) is tuple:
                room_id, ev = r
                if type(ev) is Private:
                    self.private.append(ev)
                elif type(ev) is Message:
                    kept = self.rooms.get(room_id)
                    if kept is None:
                        kept = self.rooms[room_id] = deque(maxlen=self.cap)
                    kept.append(ev)
        if self._on_written is not None:
            self._on_written(seq, None)

    def query(self, wanted: HistoryWanted | TargetsWanted, reply: Reply) -> None:
        if isinstance(wanted, TargetsWanted):
            reply(self._targets(wanted))
            return
        w = wanted
        found: tuple[Message | Private, ...]
        if w.room_id:
            kept = list(self.rooms.get(w.room_id, ()))
            found = tuple(select(kept, w.mode, w.start, w.end, w.limit))
        else:
            me, other = fold(w.account or ""), fold(w.target)
            peer = fold(w.peer_account) if w.peer_account else None
            talk = [p for p in self.private if private_between(p, me, other, peer, w.since)]
            found = tuple(select(talk, w.mode, w.start, w.end, w.limit))
        reply(HistoryReply(w.target, bool(w.room_id), found, "request", w.tag))

    def _targets(self, w: TargetsWanted) -> HistoryTargets:
        found: dict[str, tuple[str, bool, float]] = {}
        for room_id, name in w.rooms:
            times = [m.time for m in self.rooms.get(room_id, ()) if w.since <= m.time <= w.until]
            if times:
                found["#" + fold(name)] = (name, True, max(times))
        me = fold(w.account or "")
        since = max(w.since, w.account_since)
        for p in self.private if me else ():
            if not since <= p.time <= w.until:
                continue
            if fold(p.sender.account or "") == me:
                peer = p.target.name
            elif fold(p.target.account or "") == me:
                peer = p.sender.name
            else:
                continue
            found[fold(peer)] = (peer, False, p.time)
        ordered = sorted(found.values(), key=lambda t: t[2])
        kept = ordered[-w.limit :] if w.newest else ordered[: w.limit]
        return HistoryTargets(tuple(kept), w.tag)

    def prune(self, now: float) -> None:
        return None

    async def close(self) -> None:
        return None
