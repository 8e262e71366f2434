"""What every lasting store does, on SQLite and on PostgreSQL alike: records
written by the writer (on a real event loop) come back after a reopen;
queries come after the writes before them; group commit reports honestly;
rooms, accounts, retention, and ids that never repeat.

What only one kind of store has (files, locks, a full disk; schema versions
shared between nodes) is in ``test_sqlite.py`` and ``test_postgres.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from salas.core.events import HistoryReply, HistoryTargets, HistoryWanted, TargetsWanted
from salas.core.records import AccountDeleted, AccountRecord, IdsUsed, Record, RoomClosed
from stores import (
    GUEST,
    T0,
    Backend,
    Writer,
    latest,
    room,
    say,
    sqlite_backend,
    tell,
)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return sqlite_backend(tmp_path)
    return Backend("postgres", url=request.getfixturevalue("pg_url"))


@pytest.fixture
async def writer(backend: Backend) -> AsyncIterator[Writer]:
    w = await backend.writer()
    yield w
    await w.store.close()


# -- what is written comes back ------------------------------------------------


async def test_ids_given_to_messages_not_kept_are_never_given_again(
    writer: Writer, backend: Backend
) -> None:
    # A CTCP request took id 7 and was not kept; a lower mark later changes nothing.
    writer.store.submit(1, [IdsUsed(7)])
    writer.store.submit(2, [IdsUsed(3)])
    await writer.written(2)
    await writer.store.close()
    store, loaded = await backend.reopen_load()
    try:
        assert loaded.last_message_id == 7
    finally:
        await store.close()


async def test_written_records_come_back_after_reopening(writer: Writer, backend: Backend) -> None:
    sala = room(1, "Sala", owner="ana", limit=5, topic="bem-vindos", topic_by="ana", topic_at=T0)
    turns: list[list[Record]] = [
        [sala, AccountRecord("ana", "Ana", "$argon2id$v=19$fake", False, T0)],
        [(1, say(1, "Sala", "olá 🙂")), (1, say(2, "Sala", "second", who=GUEST))],
        [(0, tell(3, "psst")), (1, say(4, "Sala", "third"))],
    ]
    for seq, records in enumerate(turns, 1):
        writer.store.submit(seq, records)
    await writer.written(3)
    await writer.store.close()

    store, loaded = await backend.reopen_load()
    try:
        assert loaded.rooms == (sala,)
        assert loaded.accounts == (AccountRecord("ana", "Ana", "$argon2id$v=19$fake", False, T0),)
        assert (loaded.last_message_id, loaded.last_room_id) == (4, 1)
        assert store.recent(1, "Sala", 10) == [
            say(1, "Sala", "olá 🙂"),
            say(2, "Sala", "second", who=GUEST),
            say(4, "Sala", "third"),
        ]
        assert store.recent(1, "Sala", 2) == [
            say(2, "Sala", "second", who=GUEST),
            say(4, "Sala", "third"),
        ]
        assert store.recent(99, "nowhere", 10) == []
    finally:
        await store.close()


async def test_a_query_is_answered_after_what_was_submitted_before_it(writer: Writer) -> None:
    writer.store.submit(1, [room(1, "Sala")])
    for i in range(1, 51):
        writer.store.submit(i + 1, [(1, say(i, "Sala", f"m{i}"))])
    answer = await writer.ask(latest(1, "Sala"))  # asked before any report came back
    assert [m.text for m in answer.messages] == [f"m{i}" for i in range(1, 51)]
    assert (answer.target, answer.room) == ("Sala", True)


async def test_group_commit_reports_the_highest_turn_and_keeps_every_record(
    writer: Writer, backend: Backend
) -> None:
    """How many commits it takes is the writer's business; what it reports
    must be true: each turn up to the highest reported is kept."""
    turns = 400
    writer.store.submit(1, [room(1, "Sala")])
    for seq in range(2, turns + 1):
        writer.store.submit(seq, [(1, say(seq, "Sala", f"burst {seq}"))])
    await writer.written(turns)
    seqs = [seq for seq, _ in writer.reports]
    assert all(err is None for _, err in writer.reports)
    assert seqs == sorted(set(seqs)), "reports go forwards, each turn once at most"
    assert seqs[-1] == turns
    assert len(seqs) <= turns
    ids = await backend.column("SELECT id FROM messages ORDER BY id")
    assert ids == list(range(2, turns + 1))


async def test_a_big_turn_is_written_whole(writer: Writer, backend: Backend) -> None:
    """One turn with many messages, rooms and private ones mixed, in order."""
    records: list[Record] = [room(1, "Sala"), room(2, "other")]
    for i in range(1, 1501):
        records.append((i % 3, tell(i, f"p{i}")) if i % 3 == 0 else (i % 3, say(i, "x", f"{i}")))
    writer.store.submit(1, records)
    await writer.written(1)
    assert await backend.column("SELECT count(*) FROM messages") == [1000]
    assert await backend.column("SELECT count(*) FROM private_messages") == [500]


# -- rooms and accounts ----------------------------------------------------------


async def test_room_changes_are_saved_whole_and_the_latest_wins(
    writer: Writer, backend: Backend
) -> None:
    writer.store.submit(1, [room(1, "Sala")])
    writer.store.submit(2, [room(1, "Sala", limit=3, password="chave", topic="one")])
    changed = room(
        1,
        "Sala",
        owner="ana",
        limit=None,
        password=None,
        private=True,
        topic="two",
        topic_by="ana",
        topic_at=T0 + 5,
        flags="mnt",
        bans=("bad!*@*", "*!*@10.0.0.9"),
    )
    writer.store.submit(3, [changed])
    await writer.written(3)
    await writer.store.close()
    store, loaded = await backend.reopen_load()
    await store.close()
    assert loaded.rooms == (changed,)


async def test_a_closed_room_is_gone_and_a_new_one_of_that_name_starts_empty(
    writer: Writer, backend: Backend
) -> None:
    writer.store.submit(1, [room(1, "Sala"), room(2, "other")])
    writer.store.submit(2, [(1, say(1, "Sala", "old room")), (2, say(2, "other", "elsewhere"))])
    writer.store.submit(3, [RoomClosed(1, T0 + 10)])
    await writer.written(3)
    await writer.store.close()

    store, loaded = await backend.reopen_load()
    assert [r.name for r in loaded.rooms] == ["other"]
    assert loaded.last_room_id == 2  # a closed room's id is never given again
    w = Writer(store)
    # Closed and made again in one turn: order within the turn is kept.
    w.store.submit(1, [room(3, "SALA"), (3, say(3, "SALA", "new room"))])
    w.store.submit(2, [RoomClosed(3, T0 + 20), room(4, "sala")])
    await w.written(2)
    assert [m.text for m in (await w.ask(latest(4, "sala"))).messages] == []
    await store.close()

    store, loaded = await backend.reopen_load()
    try:
        assert [(r.id, r.name) for r in loaded.rooms] == [(2, "other"), (4, "sala")]
        assert store.recent(4, "sala", 20) == []
        assert [m.text for m in store.recent(2, "other", 20)] == ["elsewhere"]
    finally:
        await store.close()
    # The export reads every room that has had the name, oldest first.
    rows = await backend.export("#SALA")
    assert [(row["id"], row["room"], row["text"]) for row in rows] == [
        (1, "Sala", "old room"),
        (3, "SALA", "new room"),
    ]
    assert rows[0]["time"] == "2025-10-09T08:53:21.000Z"
    assert (rows[0]["sender"], rows[0]["account"], rows[0]["kind"]) == ("ana", "ana", "say")


async def test_accounts_are_saved_updated_and_deleted(writer: Writer, backend: Backend) -> None:
    writer.store.submit(
        1,
        [
            AccountRecord("ana", "Ana", "$argon2id$one", False, T0),
            AccountRecord("bo", "bo", "$argon2id$bo", False, T0 + 1),
            AccountRecord("cy", "Cy", "$argon2id$cy", False, T0 + 2),
        ],
    )
    writer.store.submit(2, [AccountRecord("ana", "ANA", "$argon2id$two", True, T0 + 50)])
    writer.store.submit(3, [AccountDeleted("cy")])
    await writer.written(3)
    await writer.store.close()
    store, loaded = await backend.reopen_load()
    await store.close()
    assert sorted(loaded.accounts, key=lambda a: a.key) == [
        # An update changes name, hash and operator flag; not when it was made.
        AccountRecord("ana", "ANA", "$argon2id$two", True, T0),
        AccountRecord("bo", "bo", "$argon2id$bo", False, T0 + 1),
    ]


# -- retention ----------------------------------------------------------------------


async def test_retention_days_drops_old_messages(backend: Backend) -> None:
    now = T0 + 30 * 86400
    w = await backend.writer(retention_days=2.0)
    old, edge, fresh = now - 3 * 86400, now - 2 * 86400 + 60, now - 3600
    w.store.submit(1, [room(1, "Sala")])
    w.store.submit(
        2,
        [
            (1, say(1, "Sala", "three days old", at=old)),
            (0, tell(2, "private and old")),
            (1, say(3, "Sala", "just inside two days", at=edge)),
            (1, say(4, "Sala", "an hour old", at=fresh)),
        ],
    )
    w.store.prune(now)
    # Queued behind the prune: answered after it.
    answer = await w.ask(latest(1, "Sala"))
    assert [m.text for m in answer.messages] == ["just inside two days", "an hour old"]
    await w.store.close()
    store, _ = await backend.reopen_load()
    try:
        assert [m.id for m in store.recent(1, "Sala", 10)] == [3, 4]
        assert await backend.column("SELECT count(*) FROM private_messages") == [0]
    finally:
        await store.close()


async def test_retention_messages_keeps_the_newest_per_room(backend: Backend) -> None:
    w = await backend.writer(retention_messages=3)
    w.store.submit(1, [room(1, "Sala"), room(2, "other")])
    w.store.submit(
        2,
        [(1, say(i, "Sala", f"sala {i}")) for i in range(1, 8)]
        + [(2, say(i, "other", f"other {i}")) for i in range(8, 10)],
    )
    w.store.prune(time.time())
    await w.ask(latest(1, "Sala"))
    w.store.submit(3, [(1, say(10, "Sala", "after the prune"))])
    await w.written(3)
    await w.store.close()
    store, loaded = await backend.reopen_load()
    try:
        assert [m.text for m in store.recent(1, "Sala", 10)] == [
            "sala 5",
            "sala 6",
            "sala 7",
            "after the prune",
        ]
        assert [m.text for m in store.recent(2, "other", 10)] == ["other 8", "other 9"]
        assert loaded.last_message_id == 10
    finally:
        await store.close()


async def test_no_retention_settings_keep_everything(writer: Writer) -> None:
    writer.store.submit(
        1, [room(1, "Sala")] + [(1, say(i, "Sala", "x", at=1.0)) for i in range(1, 6)]
    )
    writer.store.prune(time.time())
    assert len((await writer.ask(latest(1, "Sala"))).messages) == 5


async def test_ids_never_repeat_even_when_retention_removes_every_message(
    backend: Backend,
) -> None:
    now = T0 + 30 * 86400
    w = await backend.writer(retention_days=1.0)
    w.store.submit(1, [room(1, "Sala"), (1, say(41, "Sala", "old", at=now - 5 * 86400))])
    await w.written(1)
    w.store.prune(now)
    await w.ask(latest(1, "Sala"))
    await w.store.close()
    store, loaded = await backend.reopen_load()
    try:
        assert store.recent(1, "Sala", 10) == []
        assert loaded.last_message_id == 41  # the next message is 42, not 1 again
    finally:
        await store.close()


async def test_retention_by_count_is_per_room_and_leaves_private_messages(
    backend: Backend,
) -> None:
    w = await backend.writer(retention_messages=1)
    w.store.submit(1, [room(1, "Sala")])
    w.store.submit(2, [(0, tell(i, f"private {i}")) for i in range(1, 4)])
    w.store.submit(3, [(1, say(i, "Sala", f"sala {i}")) for i in range(4, 7)])
    w.store.prune(time.time())
    await w.ask(latest(1, "Sala"))
    await w.store.close()
    store, _ = await backend.reopen_load()
    try:
        assert [m.text for m in store.recent(1, "Sala", 10)] == ["sala 6"]
        assert await backend.column("SELECT count(*) FROM private_messages") == [3]
    finally:
        await store.close()


async def test_private_history_and_targets(writer: Writer) -> None:
    """A conversation is found from either side, whatever the case of the names."""
    writer.store.submit(1, [room(1, "Sala"), (1, say(1, "Sala", "in the room"))])
    writer.store.submit(2, [(0, tell(2, "to bo")), (0, tell(3, "to cy", to="Cy", to_account=None))])
    answer = await writer.ask(HistoryWanted("BO", 0, "ANA", "Ana", "latest", None, None, 10))
    assert [m.text for m in answer.messages] == ["to bo"]
    got: list[HistoryReply | HistoryTargets] = []
    done = asyncio.Event()

    def reply(answer: HistoryReply | HistoryTargets) -> None:
        got.append(answer)
        done.set()

    writer.store.query(TargetsWanted("ana", "ana", ((1, "Sala"),), 0.0, T0 + 10, 10, "t"), reply)
    await asyncio.wait_for(done.wait(), 10)
    (targets,) = got
    assert isinstance(targets, HistoryTargets)
    assert [(name, is_room) for name, is_room, _ in targets.targets] == [
        ("Sala", True),
        ("bo", False),
        ("Cy", False),
    ]
