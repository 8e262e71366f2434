"""The SQLite and PostgreSQL stores' history queries give exactly what
``store.base.select`` (the rule book) gives over the same messages: every
mode, bounds by id and by time, rooms and private conversations (accounts
matched case-insensitively, by ASCII case mapping).

One database per test function; each example empties it and writes its own
messages, then asks ``_history`` (what the writer runs for ``query``) and
compares with ``select`` and with the memory store.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salas.core.commands import Bound, HistoryMode, MessageKind
from salas.core.events import HistoryReply, HistoryTargets, HistoryWanted, Message, Private
from salas.core.model import UserRef
from salas.core.names import fold
from salas.core.records import Record
from salas.store.base import select
from salas.store.memory import MemoryStore
from salas.store.sqlite import SqliteSettings, SqliteStore, _history, _write

ROOMS = {1: "Sala", 2: "other"}
MODES: tuple[HistoryMode, ...] = ("latest", "before", "after", "around", "between")
#: Case variants of a few names (most of them ana's and bo's, so conversations
#: have messages), and IRC's "special" characters, which ASCII case mapping
#: keeps apart ([ is not {).
NAMES = ("ana", "Ana", "ANA", "bo", "Bo", "BO", "[x]", "{x}")
T = TypeVar("T")

PROFILE = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

BASE_TIME = 1_700_000_000.0
#: Texts the store must give back as they were (accents, CJK, emoji, quotes).
TEXTS = ("hi", "olá, tudo bem?", "日本語", "🙂 ok", 'it\'s "quoted"', "a" * 40)
KINDS: tuple[MessageKind, ...] = ("say", "action", "notice")
Case = tuple[list[Message], list[Private], list[Record], list[HistoryWanted]]


def person(name: str, account: str | None) -> UserRef:
    # What the store gives back: sid 0, and the username and host it kept.
    return UserRef(0, name, f"~{name.lower()}", "host.example", account)


def target(name: str, account: str | None) -> UserRef:
    # A private message's target comes back with its name and account only.
    return UserRef(0, name, name, "", account)


def pick(draw: st.DrawFn, options: Sequence[T]) -> T:
    """``sampled_from`` without building a strategy per draw (much faster)."""
    return options[draw(st.integers(0, len(options) - 1))]


def histories(draw: st.DrawFn) -> tuple[list[Message], list[Private], list[Record]]:
    """Messages in two rooms and private ones, with ids rising (gaps allowed) and
    times that need not rise with them (clocks step back; several share a time)."""
    count = draw(st.integers(0, 40))
    rooms: list[Message] = []
    private: list[Private] = []
    records: list[Record] = []
    mid = 0
    accounts = (None, *NAMES)
    for _ in range(count):
        mid += draw(st.integers(1, 3))
        at = BASE_TIME + draw(st.integers(0, 24)) * 0.5
        text, kind = pick(draw, TEXTS), pick(draw, KINDS)
        sender = person(pick(draw, NAMES), pick(draw, accounts))
        room_id = draw(st.integers(0, 2))
        if room_id:
            m = Message(mid, at, ROOMS[room_id], sender, text, kind)
            rooms.append(m)
            records.append((room_id, m))
        else:
            p = Private(
                mid, at, sender, target(pick(draw, NAMES), pick(draw, accounts)), text, kind
            )
            private.append(p)
            records.append((0, p))
    return rooms, private, records


def bound(draw: st.DrawFn, ids: list[int], at: list[float]) -> Bound | None:
    """Bounds that often sit exactly on a message (by id or by time), since
    that is where ``<`` and ``<=`` part, and sometimes between or beyond."""
    kind = draw(st.integers(0, 6 if ids else 4))
    if kind == 0:
        return None
    if kind == 1:
        return Bound(id=draw(st.integers(0, 125)))
    if kind == 2:
        return Bound(time=BASE_TIME + draw(st.integers(-1, 25)) * 0.5 + 0.25)
    if kind == 3:
        return Bound()  # neither: the same as time 0 for both
    if kind == 4:
        return Bound(time=BASE_TIME + draw(st.integers(0, 24)) * 0.5)
    if kind == 5:
        return Bound(id=pick(draw, ids))
    return Bound(time=pick(draw, at))


def question(draw: st.DrawFn, ids: list[int], at: list[float]) -> HistoryWanted:
    mode = pick(draw, MODES)
    start, end = bound(draw, ids, at), bound(draw, ids, at)
    # Mostly small limits, so that which end a mode keeps matters.
    limit = draw(st.integers(0, 6)) if draw(st.booleans()) else draw(st.integers(0, 45))
    if draw(st.booleans()):
        room_id = draw(st.integers(1, 3))  # 3: a room with no messages
        name = ROOMS.get(room_id, "empty")
        return HistoryWanted(name, room_id, "me", None, mode, start, end, limit)
    account, other = pick(draw, NAMES), pick(draw, NAMES)
    # The other's account when the name is registered (maybe under another
    # spelling of it), and when the asker's account was made.
    peer = pick(draw, NAMES) if draw(st.booleans()) else None
    since = pick(draw, at) if at and draw(st.booleans()) else 0.0
    return HistoryWanted(
        other, 0, account, account, mode, start, end, limit, peer_account=peer, since=since
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    rooms, private, records = histories(draw)
    said = [*rooms, *private]
    ids, at = [m.id for m in said], [m.time for m in said]
    asked = [question(draw, ids, at) for _ in range(draw(st.integers(1, 8)))]
    return rooms, private, records, asked


def in_conversation(
    p: Private, account: str, other: str, peer: str | None = None, since: float = 0.0
) -> bool:
    """Account ``account``'s conversation with ``other``: what the account sent
    to that name, and what that name sent to the account (ASCII case-insensitive),
    since the account was made. When ``other`` is the name of account ``peer``,
    that account is who ``other`` is wherever it was logged in, whatever its nick."""

    def is_other(ref: UserRef) -> bool:
        if peer is not None and ref.account:
            return fold(ref.account) == fold(peer)
        return fold(ref.name) == fold(other)

    if p.time < since:
        return False
    sent = fold(p.sender.account or "\0") == fold(account) and is_other(p.target)
    got = fold(p.target.account or "\0") == fold(account) and is_other(p.sender)
    return sent or got


def expected(rooms: list[Message], private: list[Private], w: HistoryWanted) -> tuple[object, ...]:
    items: list[Message] | list[Private]
    if w.room_id:
        items = [m for m in rooms if m.room == ROOMS.get(w.room_id)]
    else:
        assert w.account is not None
        items = [
            p for p in private if in_conversation(p, w.account, w.target, w.peer_account, w.since)
        ]
    return tuple(select(items, w.mode, w.start, w.end, w.limit))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A real store file (schema, indexes, WAL), through its reader connection."""
    store = SqliteStore(SqliteSettings(tmp_path / "salas.db"))
    with contextlib.closing(store.reader) as conn:
        yield conn


def refill(db: sqlite3.Connection, records: list[Record]) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.execute("DELETE FROM messages")
    db.execute("DELETE FROM private_messages")
    _write(db, records)
    db.execute("COMMIT")


def memory_answer(records: list[Record], w: HistoryWanted) -> HistoryReply:
    mem = MemoryStore()
    mem.submit(1, records)
    answers: list[HistoryReply | HistoryTargets] = []
    mem.query(w, answers.append)
    (answer,) = answers
    assert isinstance(answer, HistoryReply)
    return answer


def test_sql_history_equals_select(db: sqlite3.Connection) -> None:
    @PROFILE
    @given(cases())
    def check(case: Case) -> None:
        rooms, private, records, asked = case
        refill(db, records)
        for w in asked:
            want = expected(rooms, private, w)
            got = _history(db, w)
            assert got.messages == want, (w, [m.id for m in got.messages])
            assert (got.target, got.room, got.reason) == (w.target, bool(w.room_id), "request")
            assert memory_answer(records, w).messages == want

    check()


def test_private_history_ignores_case_of_account_and_name(db: sqlite3.Connection) -> None:
    """A worked example of the rule the property relies on."""
    ana, bo = person("ana", "Ana"), person("Bo", "bo")
    msgs = [
        Private(1, 10.0, ana, target("BO", "bo"), "ana to bo"),
        Private(2, 11.0, bo, target("ANA", "ana"), "bo to ana"),
        Private(3, 12.0, person("bo", None), target("Ana", "ANA"), "a guest called bo"),
        Private(4, 13.0, ana, target("cy", None), "ana to cy"),
        Private(5, 14.0, person("Ana", None), target("bo", "bo"), "a guest called Ana"),
    ]
    refill(db, [(0, p) for p in msgs])
    w = HistoryWanted("bO", 0, "ANA", "aNa", "latest", None, None, 10)
    assert [p.id for p in _history(db, w).messages] == [1, 2, 3]
    w = HistoryWanted("ANA", 0, "bo", "BO", "latest", None, None, 10)
    assert [p.id for p in _history(db, w).messages] == [1, 2, 5]


def test_postgres_history_equals_select(pg_url: str) -> None:
    """The same property against a real PostgreSQL (its own loop: Hypothesis
    drives a synchronous function, and each example runs to its end on it)."""
    from salas.store import postgres as pg

    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(pg.connect(pg_url))
    try:
        loop.run_until_complete(pg.migrate(conn, "test"))

        async def refill_pg(records: list[Record]) -> None:
            async with conn.transaction():
                await conn.execute("DELETE FROM messages")
                await conn.execute("DELETE FROM private_messages")
                await pg._write(conn, records)

        @PROFILE
        @given(cases())
        def check(case: Case) -> None:
            rooms, private, records, asked = case
            loop.run_until_complete(refill_pg(records))
            for w in asked:
                want = expected(rooms, private, w)
                got = loop.run_until_complete(pg._history(conn, w))
                assert got.messages == want, (w, [m.id for m in got.messages])
                assert (got.target, got.room, got.reason) == (w.target, bool(w.room_id), "request")

        check()
    finally:
        loop.run_until_complete(conn.close())
        loop.close()


def test_between_with_bounds_of_two_kinds_may_run_backwards(db: sqlite3.Connection) -> None:
    """A message id and a time: compared by that message's time (CHATHISTORY BETWEEN)."""
    ana = person("ana", None)
    msgs = [Message(i, BASE_TIME + i, "Sala", ana, f"m{i}") for i in range(1, 11)]
    refill(db, [(1, m) for m in msgs])
    for start, end in [
        (Bound(id=8), Bound(time=BASE_TIME + 2)),  # newest first: from id 8 back to time 2
        (Bound(time=BASE_TIME + 8), Bound(id=2)),
    ]:
        w = HistoryWanted("Sala", 1, "me", None, "between", start, end, 3)
        assert [m.id for m in _history(db, w).messages] == [5, 6, 7]  # the 3 nearest 8
        assert [m.id for m in select(msgs, "between", start, end, 3)] == [5, 6, 7]
    forwards = HistoryWanted(
        "Sala", 1, "me", None, "between", Bound(id=2), Bound(time=BASE_TIME + 8), 3
    )
    assert [m.id for m in _history(db, forwards).messages] == [3, 4, 5]
