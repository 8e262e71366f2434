"""The SQLite store on its own: schema upgrades and refusals; damaged files;
one server per data dir; file modes; and writes that fail (a lock, a full
disk), are reported, and succeed once the cause is gone. What every store
does is in ``test_stores.py``."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from salas.core.events import HistoryWanted
from salas.core.records import (
    AccountRecord,
    Loaded,
)
from salas.store import sqlite as sq
from salas.store.base import StoreError
from salas.store.sqlite import (
    DB_NAME,
    MIGRATIONS,
    SCHEMA_VERSION,
    SqliteSettings,
    SqliteStore,
    lock_data_dir,
)
from stores import T0, Writer, latest, room, say, tell
from support import TIME


def open_store(path: Path, **settings: object) -> SqliteStore:
    return SqliteStore(SqliteSettings(path, **settings))  # type: ignore[arg-type]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / DB_NAME


@pytest.fixture
async def writer(db_path: Path) -> AsyncIterator[Writer]:
    w = Writer(open_store(db_path))
    yield w
    await w.store.close()


def reopen_load(path: Path) -> tuple[SqliteStore, Loaded]:
    store = open_store(path)
    return store, store.load()


# -- schema versions -----------------------------------------------------------------


def make_schema_1(path: Path) -> None:
    """A database as the first salas with a store left it."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in MIGRATIONS[0].split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO rooms (id, key, name, created_at, owner, lim, password, topic,"
            " topic_by, topic_at) VALUES (1, 'sala', 'Sala', ?, 'ana', 5, 'chave',"
            " 'velha', 'ana', ?)",
            (T0, T0 + 1),
        )
        db.execute(
            "INSERT INTO rooms (id, key, name, created_at, closed_at)"
            " VALUES (2, 'gone', 'gone', ?, ?)",
            (T0, T0 + 2),
        )
        db.executemany(
            "INSERT INTO messages (id, room_id, time, sender, username, host, kind, text)"
            " VALUES (?, 1, ?, 'ana', '~ana', '10.0.0.1', ?, ?)",
            [(i, T0 + i, "action" if i == 2 else "say", f"old message {i}") for i in range(1, 4)],
        )
    finally:
        db.close()
    os.chmod(path, 0o600)


async def test_a_schema_1_database_is_upgraded_in_place(db_path: Path) -> None:
    make_schema_1(db_path)
    store = open_store(db_path)
    try:
        assert sq.schema_version(store.reader) == SCHEMA_VERSION
        loaded = store.load()
        assert [(r.id, r.name, r.limit, r.password, r.topic, r.owner) for r in loaded.rooms] == [
            (1, "Sala", 5, "chave", "velha", "ana")
        ]
        assert (loaded.accounts, loaded.last_message_id, loaded.last_room_id) == ((), 3, 2)
        old = store.recent(1, "Sala", 10)
        assert [(m.id, m.kind, m.text, m.sender.account) for m in old] == [
            (1, "say", "old message 1", None),
            (2, "action", "old message 2", None),
            (3, "say", "old message 3", None),
        ]
        # The new parts work: accounts and private messages go in beside the old rows.
        w = Writer(store)
        w.store.submit(
            1, [AccountRecord("ana", "ana", "$argon2id$x", False, T0), (0, tell(4, "hi"))]
        )
        w.store.submit(2, [(1, say(5, "Sala", "new message"))])
        await w.written(2)
        assert [m.id for m in (await w.ask(latest(1, "Sala"))).messages] == [1, 2, 3, 5]
    finally:
        await store.close()

    backup = db_path.with_name(f"{DB_NAME}.v1.bak")
    assert backup.exists()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    copy = sqlite3.connect(backup)
    try:
        assert copy.execute("PRAGMA user_version").fetchone()[0] == 1
        assert copy.execute("SELECT count(*) FROM messages").fetchone()[0] == 3
    finally:
        copy.close()
    # Opening again: nothing more to upgrade, nothing lost.
    store, loaded = reopen_load(db_path)
    await store.close()
    assert loaded.last_message_id == 5 and len(loaded.accounts) == 1


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_a_database_from_a_newer_salas_is_refused_untouched(tmp_path: Path, journal: str) -> None:
    path = tmp_path / DB_NAME
    newer = SCHEMA_VERSION + 1
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA journal_mode = {journal}")
    db.execute("CREATE TABLE future (x)")
    db.execute(f"PRAGMA user_version = {newer}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as err:
        SqliteStore(SqliteSettings(path), lock_dir=tmp_path)
    text = str(err.value)
    assert f"schema version {newer}" in text
    assert f"({SCHEMA_VERSION})" in text
    assert str(path) in text
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.bak"))
    os.close(lock_data_dir(tmp_path))  # the refused store let go of the data dir


# -- damaged files and a busy data dir ------------------------------------------------


def test_a_file_of_random_bytes_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    path.write_bytes(os.urandom(64 * 1024))
    os.chmod(path, 0o600)
    before = path.read_bytes()
    with pytest.raises(StoreError) as err:
        SqliteStore(SqliteSettings(path), lock_dir=tmp_path)
    assert str(err.value).startswith(f"{path}: can't be read as a salas database")
    assert path.read_bytes() == before
    os.close(lock_data_dir(tmp_path))  # the refused store let go of the data dir


async def test_a_database_with_damaged_pages_is_refused_untouched(tmp_path: Path) -> None:
    """A sound first page (the header) over garbage: SQLite opens it, and fails later."""
    path = tmp_path / DB_NAME
    w = Writer(open_store(path))
    w.store.submit(1, [room(1, "Sala"), *((1, say(i, "Sala", "x" * 200)) for i in range(1, 200))])
    await w.written(1)
    await w.store.close()
    page = 4096
    data = bytearray(path.read_bytes())
    assert len(data) > 4 * page
    data[page:] = os.urandom(len(data) - page)
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    store: SqliteStore | None = None
    with pytest.raises(StoreError) as err:
        store = SqliteStore(SqliteSettings(path), lock_dir=tmp_path)
        store.load()  # where the damage shows, if opening did not find it
    if store is not None:
        await store.close()
    assert str(err.value).startswith(f"{path}: can't be read as a salas database")
    assert path.read_bytes() == before


def test_a_second_store_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first = SqliteStore(SqliteSettings(tmp_path / DB_NAME), lock_dir=tmp_path)
    try:
        with pytest.raises(StoreError) as err:
            SqliteStore(SqliteSettings(tmp_path / "other.db"), lock_dir=tmp_path)
        assert f"(pid {os.getpid()})" in str(err.value)
        assert str(tmp_path) in str(err.value)
    finally:
        asyncio.run(first.close())
    # Once the first lets go, the dir is free.
    again = SqliteStore(SqliteSettings(tmp_path / DB_NAME), lock_dir=tmp_path)
    asyncio.run(again.close())


async def test_the_files_are_private_to_their_owner(writer: Writer, db_path: Path) -> None:
    writer.store.submit(1, [AccountRecord("ana", "ana", "$argon2id$secret", False, T0)])
    await writer.written(1)
    made = [p for p in db_path.parent.iterdir() if p.name.startswith(DB_NAME)]
    assert {p.name for p in made} >= {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"}
    for p in made:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name


# -- checkpoints -----------------------------------------------------------------------


def rows_in_the_database_file(db_path: Path) -> int:
    """Messages in salas.db alone, without its log (a copy without the -wal):
    what a checkpoint has copied so far."""
    copy = db_path.with_name("copy.db")
    copy.write_bytes(db_path.read_bytes())
    try:
        db = sqlite3.connect(copy)
        try:
            return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
        except sqlite3.DatabaseError:
            return -1  # copied in the middle of a checkpoint: look again
        finally:
            db.close()
    finally:
        copy.unlink()


async def checkpointed(db_path: Path, done: Callable[[int], bool]) -> None:
    """Until the database file's messages satisfy ``done`` (a checkpoint came)."""
    deadline = asyncio.get_running_loop().time() + 5 * TIME
    while not done(rows_in_the_database_file(db_path)):
        assert asyncio.get_running_loop().time() < deadline, "no checkpoint"
        await asyncio.sleep(0.05)


async def test_the_log_is_checkpointed_by_what_was_written_not_by_the_clock(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint holds the next commit for a moment, so a quiet chat isn't
    checkpointed at every look; once enough commits are written, it is: the
    messages reach the database file itself, and the log starts over."""
    monkeypatch.setattr(sq, "CHECKPOINT_PERIOD", 0.05)
    monkeypatch.setattr(sq, "CHECKPOINT_COMMITS", 20)
    monkeypatch.setattr(sq, "CHECKPOINT_AFTER", 3600.0)

    w = Writer(open_store(db_path))
    try:
        w.store.submit(1, [room(1, "Sala")])
        for seq in range(2, 12):  # ten commits: under the threshold
            w.store.submit(seq, [(1, say(seq, "Sala", f"quiet {seq}"))])
            await w.written(seq)
        await asyncio.sleep(0.5)  # ten looks of the checkpointer
        assert rows_in_the_database_file(db_path) == 0
        for seq in range(12, 32):  # twenty more: past it
            w.store.submit(seq, [(1, say(seq, "Sala", f"busy {seq}"))])
            await w.written(seq)
        # A look may come in the middle of the twenty: some of them reach the
        # file then, the rest wait for the next threshold.
        await checkpointed(db_path, lambda rows: rows > 10)
    finally:
        await w.store.close()


async def test_what_retention_deletes_counts_towards_a_checkpoint(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that only prunes still gets its log copied back."""
    monkeypatch.setattr(sq, "CHECKPOINT_PERIOD", 0.05)
    monkeypatch.setattr(sq, "CHECKPOINT_RECORDS", 15)
    monkeypatch.setattr(sq, "CHECKPOINT_AFTER", 3600.0)
    w = Writer(open_store(db_path, retention_messages=1))
    try:
        w.store.submit(1, [room(1, "Sala"), *[(1, say(i, "Sala", f"m{i}")) for i in range(1, 11)]])
        await w.written(1)  # 11 records: under the threshold
        await asyncio.sleep(0.3)
        assert rows_in_the_database_file(db_path) == 0
        w.store.prune(T0 + 100)  # removes 9: past it
        await checkpointed(db_path, lambda rows: rows == 1)
    finally:
        await w.store.close()


# -- writes that fail ----------------------------------------------------------------


async def test_a_locked_database_is_reported_and_written_once_free(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else holds the write lock (a backup, a stray sqlite3 shell): the
    writer reports the failure for each turn, keeps the records, tries again,
    and writes them (once each) when the lock is gone."""
    monkeypatch.setattr(sq, "BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(sq, "RETRY_PERIOD", 0.05)
    w = Writer(open_store(db_path))
    try:
        w.store.submit(1, [room(1, "Sala"), (1, say(1, "Sala", "before"))])
        await w.written(1)
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            w.store.submit(2, [(1, say(2, "Sala", "while locked"))])
            await w.until(lambda: any(seq == 2 and err for seq, err in w.reports), "turn 2 fails")
            w.store.submit(3, [(1, say(3, "Sala", "still locked"))])
            await w.until(lambda: any(seq == 3 and err for seq, err in w.reports), "turn 3 fails")
            await asyncio.sleep(0.3)  # several retries, all failing, none reported again
        finally:
            other.execute("ROLLBACK")
            other.close()
        failures = [(seq, err) for seq, err in w.reports if err]
        assert [seq for seq, _ in failures] == [2, 3]
        assert all("locked" in (err or "") for _, err in failures)
        await w.until(lambda: w.reports[-1][1] is None, "a report that writing works again")
        answer = await w.ask(latest(1, "Sala"))
        assert [m.text for m in answer.messages] == ["before", "while locked", "still locked"]
    finally:
        await w.store.close()


#: Run in a child process: the file-size limit it sets is per process.
DISK_FULL = r"""
import asyncio, json, os, resource, signal, sys
from pathlib import Path
from salas.core.events import Message
from salas.core.model import UserRef

from salas.store import sqlite as sq
from salas.store.sqlite import SqliteSettings, SqliteStore
from salas.core.records import RoomRecord

sq.RETRY_PERIOD = 0.05
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-long write fails (EFBIG) instead
path = Path(sys.argv[1])
ana = UserRef(0, "ana", "~ana", "h", "ana")

async def main():
    store = SqliteStore(SqliteSettings(path))
    news = asyncio.Queue()
    store.start(asyncio.get_running_loop(), lambda seq, err: news.put_nowait((seq, err)))
    reports = []
    async def report():
        got = await asyncio.wait_for(news.get(), 10)
        reports.append(got)
        return got
    sala = RoomRecord(1, "sala", "sala", 0.0, None, None, None, False, "", "", 0.0, "", ())
    store.submit(1, [sala])
    await report()
    biggest = max(p.stat().st_size for p in path.parent.iterdir())
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (biggest + 1024, hard))
    big = [(1, Message(i, 1.0 + i, "sala", ana, f"{i:04d}" + "x" * 500)) for i in range(1, 301)]
    store.submit(2, big)
    await report()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    await report()
    await store.close()
    kept = SqliteStore(SqliteSettings(path))
    ids = [m.id for m in kept.recent(1, "sala", 1000)]
    print(json.dumps({"reports": reports, "ids": ids}))

asyncio.run(main())
"""


def test_a_full_disk_is_reported_with_its_reason_and_written_once_space_is_back(
    tmp_path: Path,
) -> None:
    """A file-size limit (RLIMIT_FSIZE, no privileges needed) makes the disk
    'full' for the writer: the failure is reported with SQLite's reason, and
    the records are written when the limit is lifted."""
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(tmp_path / DB_NAME)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    reports = [tuple(r) for r in out["reports"]]
    assert reports[0] == (1, None)
    seq, err = reports[1]
    assert seq == 2 and err, reports
    # The reason SQLite gave, not a complaint about the cleanup after it.
    assert "rollback" not in err and ("disk" in err or "full" in err), err
    assert reports[2] == (0, None)
    assert out["ids"] == list(range(1, 301))


async def test_a_schema_2_database_moves_its_private_messages_to_their_own_table(
    db_path: Path,
) -> None:
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        for script in MIGRATIONS[:2]:
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        db.execute(
            "INSERT INTO rooms (id, key, name, created_at) VALUES (1, 'sala', 'Sala', ?)", (T0,)
        )
        db.execute(
            "INSERT INTO messages (id, room_id, time, sender, username, host, kind, text, account,"
            " target, target_account) VALUES (1, 1, ?, 'ana', 'ana', 'h', 'say', 'in the room',"
            " 'ana', NULL, NULL), (2, 0, ?, 'ana', 'ana', 'h', 'say', 'just for bo', 'ana',"
            " 'bo', 'bo')",
            (T0, T0 + 1),
        )
    finally:
        db.close()
    store = open_store(db_path)
    try:
        assert sq.schema_version(store.reader) == SCHEMA_VERSION
        assert store.load().last_message_id == 2
        assert [m.text for m in store.recent(1, "Sala", 10)] == ["in the room"]
        w = Writer(store)
        wanted = HistoryWanted("ana", 0, "bo", "bo", "latest", None, None, 10)
        answer = await w.ask(wanted)
        assert [(m.text, m.sender.name) for m in answer.messages] == [("just for bo", "ana")]
        rooms_rows = store.reader.execute("SELECT count(*) FROM messages").fetchone()[0]
        assert rooms_rows == 1
    finally:
        await store.close()
