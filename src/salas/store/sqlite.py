"""The default store: one SQLite file in the data dir (stdlib ``sqlite3``, WAL).

Writes happen on one writer thread. The server submits each loop turn's
records; the writer takes everything waiting, writes it in one transaction
and commits (group commit: one commit per turn at most, fewer under load),
then tells the loop which turns are safe. Nobody sees a message before the
commit that keeps it, so a message any client received survives ``kill -9``.
With ``synchronous=NORMAL`` (the default) a commit is in the operating
system's hands, which a killed process can't undo; ``fsync = true`` makes it
wait for the disk too, which a power cut can't undo either.

History queries run on the same thread, in order with the writes, so an
answer includes every message submitted before it was asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salas.core.commands import Bound
from salas.core.events import (
    HistoryReply,
    HistoryTargets,
    HistoryWanted,
    Message,
    Private,
    TargetsWanted,
)
from salas.core.names import fold
from salas.core.records import (
    AccountDeleted,
    AccountRecord,
    IdsUsed,
    Loaded,
    Record,
    RoomClosed,
    RoomRecord,
)
from salas.store.base import OnWritten, Reply, StoreError, ascending
from salas.store.rows import (
    account_row,
    json_list,
    read_message,
    read_private,
    room_row,
    steps,
)

log = logging.getLogger("salas")

DB_NAME = "salas.db"
LOCK_NAME = "salas.lock"
#: How long a write waits for a lock someone else holds (a backup, a reader).
BUSY_TIMEOUT_MS = 5000
#: Seconds between attempts to write records that failed (disk full, locked).
RETRY_PERIOD = 1.0
#: Seconds between looks at the write-ahead log (see ``_checkpoints``).
CHECKPOINT_PERIOD = 2.0
#: A look checkpoints once this many commits or records have been written
#: since the last checkpoint, or once this many seconds have passed with
#: anything written. A checkpoint holds the next commit (and so everyone's
#: output) for up to a millisecond, so a quiet chat has one every half
#: minute or so, not every look; a busy one still has one every look.
CHECKPOINT_COMMITS = 500
CHECKPOINT_RECORDS = 20_000
CHECKPOINT_AFTER = 30.0
#: Bytes of write-ahead log past which a checkpoint starts it again from the top
#: (briefly holding commits), and the size its file is cut back to.
WAL_SIZE_LIMIT = 16 * 1024 * 1024
#: SQLite's default page size (a log frame is a page and a 24-byte header).
PAGE_BYTES = 4096

#: Schema versions, oldest first; ``PRAGMA user_version`` says how many are applied.
#: Never edit one that has shipped: add the next.
MIGRATIONS: tuple[str, ...] = (
    # 1: rooms and their messages.
    """
    CREATE TABLE rooms (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at REAL NOT NULL,
        closed_at REAL,
        owner TEXT,
        lim INTEGER,
        password TEXT,
        private INTEGER NOT NULL DEFAULT 0,
        topic TEXT NOT NULL DEFAULT '',
        topic_by TEXT NOT NULL DEFAULT '',
        topic_at REAL NOT NULL DEFAULT 0,
        flags TEXT NOT NULL DEFAULT 'nt',
        bans TEXT NOT NULL DEFAULT '[]'
    );
    CREATE UNIQUE INDEX rooms_live ON rooms(key) WHERE closed_at IS NULL;
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        room_id INTEGER NOT NULL,
        time REAL NOT NULL,
        sender TEXT NOT NULL,
        username TEXT NOT NULL,
        host TEXT NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX messages_by_room ON messages(room_id, id)
    """,
    # 2: accounts, and private conversations (room_id 0) kept per account.
    """
    CREATE TABLE accounts (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL,
        oper INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    ALTER TABLE messages ADD COLUMN account TEXT;
    ALTER TABLE messages ADD COLUMN target TEXT;
    ALTER TABLE messages ADD COLUMN target_account TEXT;
    CREATE INDEX messages_sent_by ON messages(lower(account), id) WHERE room_id = 0;
    CREATE INDEX messages_sent_to ON messages(lower(target_account), id) WHERE room_id = 0;
    CREATE INDEX messages_by_time ON messages(time)
    """,
    # 3: private messages get a table of their own, so that the indexes only
    # they need cost room messages nothing (each index is paid on every
    # insert); retention by age walks ids, so the index on time goes; and the
    # highest message id ever given is kept apart from the messages, so
    # retention that removes every message can't make ids (IRC msgids) repeat.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta (key, value) SELECT 'last_message_id', coalesce(max(id), 0) FROM messages;
    CREATE TABLE private_messages (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        sender TEXT NOT NULL,
        username TEXT NOT NULL,
        host TEXT NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL,
        account TEXT,
        target TEXT NOT NULL,
        target_account TEXT
    );
    INSERT INTO private_messages
        SELECT id, time, sender, username, host, kind, text, account, coalesce(target, ''),
            target_account
        FROM messages WHERE room_id = 0;
    DELETE FROM messages WHERE room_id = 0;
    DROP INDEX messages_sent_by;
    DROP INDEX messages_sent_to;
    DROP INDEX messages_by_time;
    CREATE INDEX private_sent_by ON private_messages(lower(account), id);
    CREATE INDEX private_sent_to ON private_messages(lower(target_account), id)
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_INSERT_MESSAGE = (
    "INSERT INTO messages (id, room_id, time, sender, username, host, kind, text, account)"
    " VALUES (?,?,?,?,?,?,?,?,?)"
)
_IDS_USED = "UPDATE meta SET value = max(value, ?) WHERE key = 'last_message_id'"
_INSERT_PRIVATE = (
    "INSERT INTO private_messages (id, time, sender, username, host, kind, text, account,"
    " target, target_account) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_SAVE_ROOM = (
    "INSERT INTO rooms (id, key, name, created_at, owner, lim, password, private, topic,"
    " topic_by, topic_at, flags, bans) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(id) DO UPDATE SET key=excluded.key, name=excluded.name,"
    " owner=excluded.owner, lim=excluded.lim, password=excluded.password,"
    " private=excluded.private, topic=excluded.topic, topic_by=excluded.topic_by,"
    " topic_at=excluded.topic_at, flags=excluded.flags, bans=excluded.bans"
)
_SAVE_ACCOUNT = (
    "INSERT INTO accounts (key, name, hash, oper, created_at) VALUES (?,?,?,?,?)"
    " ON CONFLICT(key) DO UPDATE SET name=excluded.name, hash=excluded.hash, oper=excluded.oper"
)
_COLUMNS = "id, time, sender, username, host, kind, text, account"
_PRIVATE_COLUMNS = "id, time, sender, username, host, kind, text, account, target, target_account"


@dataclass(frozen=True, slots=True)
class SqliteSettings:
    path: Path
    #: Wait for the disk on every commit (survives a power cut, not only a crash).
    fsync: bool = False
    #: Retention: drop messages older than this many days (0: keep them).
    retention_days: float = 0.0
    #: Retention: keep at most this many messages per room (0: no cap).
    retention_messages: int = 0


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with salas's settings; clear errors for files that aren't ours."""
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{path}: can't be read as a salas database ({err})") from err
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the file up to ``SCHEMA_VERSION`` in place; returns the version found.

    An older file is copied aside first (``salas.db.vN.bak``): an upgrade that
    fails halfway leaves the original next to it.
    """
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {found}, newer than this salas knows"
            f" ({SCHEMA_VERSION}): run the newer salas, or restore a backup"
        )
    if found == SCHEMA_VERSION:
        return found
    if found > 0:
        backup = path.with_name(f"{path.name}.v{found}.bak")
        # The copy holds what the file holds (room keys, password hashes): its owner's alone.
        os.close(os.open(backup, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(backup, 0o600)
        with contextlib.closing(sqlite3.connect(backup)) as copy:
            conn.backup(copy)
        log.info("store: %s is at schema version %d; copy kept in %s", path, found, backup)
    for version in range(found, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(
                f"{path}: upgrade to schema version {version + 1} failed: {err}"
            ) from err
        if found > 0:
            log.info("store: %s upgraded to schema version %d", path, version + 1)
    return found


def lock_data_dir(data_dir: Path) -> int:
    """One server per data dir: an exclusive lock held while the process lives."""
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)
        raise StoreError(
            f"{data_dir} is in use by another salas server (pid {other}); "
            "stop it, or give this one its own --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _bound_sql(b: Bound, op: str) -> tuple[str, float | int]:
    if b.id is not None:
        return f"id {op} ?", b.id
    return f"time {op} ?", b.time or 0.0


class SqliteStore:
    def __init__(self, settings: SqliteSettings, *, lock_dir: Path | None = None) -> None:
        self.settings = settings
        self.path = settings.path
        self._lock_fd = lock_data_dir(lock_dir) if lock_dir is not None else -1
        try:
            # Password hashes live here: the file is its owner's alone (SQLite
            # gives the -wal and -shm files the same mode).
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self.reader = connect(self.path)
        except BaseException:
            self._unlock()
            raise
        try:
            # Versions first: a file from a newer salas is refused before
            # anything (even the journal mode in its header) is changed.
            migrate(self.reader, self.path)
            self.reader.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as err:
            # A damaged file can pass connect() (its first page is fine) and fail here.
            self.reader.close()
            self._unlock()
            raise StoreError(f"{self.path}: can't be read as a salas database ({err})") from err
        except BaseException:
            self.reader.close()
            self._unlock()
            raise
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_written: OnWritten | None = None
        #: Writer thread only: the last commit failed.
        self._failing = False
        #: Commits and records written so far (the writer thread counts, the
        #: checkpointer only reads).
        self._commits = 0
        self._records = 0

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # -- on the event loop ------------------------------------------------------

    async def open(self) -> None:
        """Nothing to do: the file was opened (and upgraded) by the constructor."""

    def load(self) -> Loaded:
        try:
            return self._load()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: can't be read as a salas database ({err})") from err

    def _load(self) -> Loaded:
        db = self.reader
        rooms = tuple(
            RoomRecord(
                id=r[0],
                key=r[1],
                name=r[2],
                created_at=r[3],
                owner=r[4],
                limit=r[5],
                password=r[6],
                private=bool(r[7]),
                topic=r[8],
                topic_by=r[9],
                topic_at=r[10],
                flags=r[11],
                bans=tuple(json_list(r[12])),
            )
            for r in db.execute(
                "SELECT id, key, name, created_at, owner, lim, password, private, topic,"
                " topic_by, topic_at, flags, bans FROM rooms WHERE closed_at IS NULL ORDER BY id"
            )
        )
        accounts = tuple(
            AccountRecord(r[0], r[1], r[2], bool(r[3]), r[4])
            for r in db.execute("SELECT key, name, hash, oper, created_at FROM accounts")
        )
        last_message = db.execute(
            "SELECT max(coalesce((SELECT max(id) FROM messages), 0),"
            " coalesce((SELECT max(id) FROM private_messages), 0),"
            " coalesce((SELECT value FROM meta WHERE key = 'last_message_id'), 0))"
        ).fetchone()[0]
        last_room = db.execute("SELECT max(id) FROM rooms").fetchone()[0] or 0
        return Loaded(rooms, accounts, last_message, last_room)

    def recent(self, room_id: int, room_name: str, limit: int) -> list[Message]:
        rows = self.reader.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE room_id = ? ORDER BY id DESC LIMIT ?",
            (room_id, limit),
        ).fetchall()
        return [read_message(r, room_name) for r in reversed(rows)]

    def start(self, loop: asyncio.AbstractEventLoop, on_written: OnWritten) -> None:
        self._loop = loop
        self._on_written = on_written
        self._thread = threading.Thread(target=self._run, name="salas-store", daemon=True)
        self._thread.start()
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name="salas-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoints(self) -> None:
        """Copy the write-ahead log back into the database now and then, beside
        the writer. A checkpoint copies each page changed since the last one
        once, however often it changed, so fewer of them cost less."""
        db = connect(self.path)
        last, commits, records = time.monotonic(), 0, 0  # at the last checkpoint
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_PERIOD):
                now_commits, now_records = self._commits, self._records
                if now_commits == commits or (
                    now_commits - commits < CHECKPOINT_COMMITS
                    and now_records - records < CHECKPOINT_RECORDS
                    and time.monotonic() - last < CHECKPOINT_AFTER
                ):
                    continue
                try:
                    # The bulk of the copying goes beside the commits (PASSIVE).
                    # Under steady load the log never gets copied to its end
                    # that way, so once it passes the limit the few pages added
                    # meanwhile are copied with commits held for a moment
                    # (RESTART), and the next commit starts it from the top.
                    _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames * PAGE_BYTES > WAL_SIZE_LIMIT:
                        db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                    last, commits, records = time.monotonic(), now_commits, now_records
                except sqlite3.Error as err:
                    log.warning("store: checkpoint failed (tried again later): %s", err)
        finally:
            db.close()

    def submit(self, seq: int, records: list[Record]) -> None:
        self._queue.put((seq, records))

    def query(self, wanted: HistoryWanted | TargetsWanted, reply: Reply) -> None:
        self._queue.put((wanted, reply))

    def prune(self, now: float) -> None:
        self._queue.put(("prune", now))

    async def close(self) -> None:
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        thread = self._thread
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join)
            self._thread = None
        self.reader.close()
        self._unlock()

    # -- on the writer thread ----------------------------------------------------

    def _run(self) -> None:
        db = connect(self.path)
        db.execute(f"PRAGMA synchronous = {'FULL' if self.settings.fsync else 'NORMAL'}")
        # Checkpoints run on their own thread (``_checkpoints``), never inside a
        # commit: a checkpoint syncs and copies megabytes, and everyone's output
        # waits for the commit.
        db.execute("PRAGMA wal_autocheckpoint = 0")
        # When the log starts again from its beginning, the file is cut back to this.
        db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        failed: list[Record] = []  # records that did not commit: tried again, first
        try:
            while True:
                try:
                    item = self._queue.get(timeout=RETRY_PERIOD if failed else None)
                except queue.Empty:
                    failed = self._commit(db, failed, 0)
                    continue
                items = [item]
                with contextlib.suppress(queue.Empty):
                    while True:
                        items.append(self._queue.get_nowait())
                pending, failed, seq, stop = failed, [], 0, False
                for it in items:
                    if it is None:
                        stop = True
                    elif type(it[0]) is int:  # (seq, records): one loop turn's journal
                        seq = it[0]
                        pending.extend(it[1])
                    else:  # a query: after everything submitted before it
                        if seq or pending:
                            pending, seq = self._commit(db, pending, seq), 0
                        self._answer(db, it)
                if seq or pending:
                    pending = self._commit(db, pending, seq)
                failed = pending
                if stop:
                    if failed:
                        log.error("store: %d record(s) could not be written", len(failed))
                    return
        finally:
            db.close()

    def _commit(self, db: sqlite3.Connection, records: list[Record], seq: int) -> list[Record]:
        """Write ``records`` in one transaction; returns those still to write."""
        error: str | None = None
        if records:
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    _write(db, records)
                    db.execute("COMMIT")
                    self._commits += 1
                    self._records += len(records)
                except BaseException:
                    # SQLite may have rolled back already (disk full, I/O error):
                    # a second ROLLBACK would fail and hide the real reason.
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.IntegrityError as err:
                # Not the disk's fault: trying again can't help, and must not block the rest.
                log.error("store: %d record(s) refused and dropped: %s", len(records), err)
            except sqlite3.Error as err:
                error = str(err)
            except Exception:
                # A bug, not the disk: log it, and never stall everyone's output on it.
                log.exception("store: %d record(s) could not be written", len(records))
        if seq or (error is None) == self._failing:
            self._failing = error is not None
            loop, done = self._loop, self._on_written
            if loop is not None and done is not None:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to tell
                    loop.call_soon_threadsafe(done, seq, error)
        return records if error is not None else []

    def _answer(self, db: sqlite3.Connection, item: tuple[Any, ...]) -> None:
        what = item[0]
        if what == "prune":
            with contextlib.suppress(sqlite3.Error):
                self._prune(db, item[1])
            return
        reply: Reply = item[1]
        try:
            answer: HistoryReply | HistoryTargets
            answer = _targets(db, what) if isinstance(what, TargetsWanted) else _history(db, what)
        except Exception as err:  # the asker gets an empty answer, never none
            log.error("store: history query failed: %s", err)
            if isinstance(what, TargetsWanted):
                answer = HistoryTargets((), what.tag)
            else:
                answer = HistoryReply(what.target, bool(what.room_id), (), "request", what.tag)
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(reply, answer)

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        """Retention. ``retention_messages`` counts per room; private messages
        are bounded by ``retention_days`` only."""
        s = self.settings
        if s.retention_days <= 0 and s.retention_messages <= 0:
            return
        removed = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            # Whatever goes, the ids given so far are never given again.
            db.execute(
                "UPDATE meta SET value = max(value, coalesce((SELECT max(id) FROM messages), 0),"
                " coalesce((SELECT max(id) FROM private_messages), 0))"
                " WHERE key = 'last_message_id'"
            )
            if s.retention_days > 0:
                cutoff = now - s.retention_days * 86400
                for table in ("messages", "private_messages"):
                    # Ids grow with time: walk them from the oldest to the first one
                    # young enough (no index on time to keep up on every insert).
                    first = db.execute(
                        f"SELECT id FROM {table} WHERE time >= ? ORDER BY id LIMIT 1", (cutoff,)
                    ).fetchone()
                    if first is None:
                        removed += db.execute(f"DELETE FROM {table}").rowcount
                    else:
                        removed += db.execute(
                            f"DELETE FROM {table} WHERE id < ?", (first[0],)
                        ).rowcount
            if s.retention_messages > 0:
                rooms = [r[0] for r in db.execute("SELECT DISTINCT room_id FROM messages")]
                for room_id in rooms:
                    removed += db.execute(
                        "DELETE FROM messages WHERE room_id = ? AND id <= (SELECT id FROM messages"
                        " WHERE room_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (room_id, room_id, s.retention_messages),
                    ).rowcount
            db.execute("COMMIT")
            self._commits += 1
            self._records += removed  # a big deletion fills the log too
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if removed:
            log.info("store: retention removed %d message(s)", removed)


def _write(db: sqlite3.Connection, records: list[Record]) -> None:
    for step in steps(records):
        match step:
            case (list() as said, list() as private):
                if said:
                    db.executemany(_INSERT_MESSAGE, said)
                if private:
                    db.executemany(_INSERT_PRIVATE, private)
            case RoomRecord():
                db.execute(_SAVE_ROOM, room_row(step))
            case RoomClosed():
                db.execute("UPDATE rooms SET closed_at = ? WHERE id = ?", (step.at, step.id))
            case AccountRecord():
                db.execute(_SAVE_ACCOUNT, account_row(step))
            case AccountDeleted():
                db.execute("DELETE FROM accounts WHERE key = ?", (step.key,))
            case IdsUsed():
                db.execute(_IDS_USED, (step.upto,))


def _history(db: sqlite3.Connection, w: HistoryWanted) -> HistoryReply:
    """The SQL form of ``store.base.select`` (tests hold the two to the same answers)."""
    args: list[object]
    if w.room_id:
        table, columns = "messages", _COLUMNS
        where, args = "room_id = ?", [w.room_id]
    else:
        table, columns = "private_messages", _PRIVATE_COLUMNS
        me, other = fold(w.account or ""), fold(w.target)
        if w.peer_account:
            # ``memory.private_between`` in SQL: the other's account decides
            # where it was logged in, its name where it wasn't.
            peer = fold(w.peer_account)
            where = (
                "((lower(account) = ? AND (lower(target_account) = ?"
                " OR (target_account IS NULL AND lower(target) = ?)))"
                " OR (lower(target_account) = ? AND (lower(account) = ?"
                " OR (account IS NULL AND lower(sender) = ?)))) AND time >= ?"
            )
            args = [me, peer, other, me, peer, other, w.since]
        else:
            where = (
                "((lower(account) = ? AND lower(target) = ?)"
                " OR (lower(target_account) = ? AND lower(sender) = ?)) AND time >= ?"
            )
            args = [me, other, me, other, w.since]

    def run(extra: list[tuple[str, float | int]], newest_first: bool, limit: int) -> list[Any]:
        clauses = " AND ".join([f"({where})", *(c for c, _ in extra)])
        order = "DESC" if newest_first else "ASC"
        rows = db.execute(
            f"SELECT {columns} FROM {table} WHERE {clauses} ORDER BY id {order} LIMIT ?",
            [*args, *(v for _, v in extra), limit],
        ).fetchall()
        return rows[::-1] if newest_first else rows

    start, end, limit = w.start, w.end, w.limit
    rows: list[Any] = []
    if w.mode == "latest":
        rows = run([_bound_sql(start, ">")] if start else [], True, limit)
    elif start is None:
        rows = []
    elif w.mode == "before":
        rows = run([_bound_sql(start, "<")], True, limit)
    elif w.mode == "after":
        rows = run([_bound_sql(start, ">")], False, limit)
    elif w.mode == "around":
        half = limit // 2
        older = run([_bound_sql(start, "<")], True, half) if half else []
        rows = older + run([_bound_sql(start, ">=")], False, limit - len(older))
    elif end is not None:

        def time_of(mid: int) -> float | None:
            row = db.execute(
                f"SELECT time FROM {table} WHERE ({where}) AND id = ?", [*args, mid]
            ).fetchone()
            return row[0] if row is not None else None

        if ascending(start, end, time_of):
            rows = run([_bound_sql(start, ">"), _bound_sql(end, "<")], False, limit)
        else:
            rows = run([_bound_sql(start, "<"), _bound_sql(end, ">")], True, limit)
    found: tuple[Message | Private, ...] = (
        tuple(read_message(r, w.target) for r in rows)
        if w.room_id
        else tuple(read_private(r) for r in rows)
    )
    return HistoryReply(w.target, bool(w.room_id), found, "request", w.tag)


def _targets(db: sqlite3.Connection, w: TargetsWanted) -> HistoryTargets:
    found: list[tuple[str, bool, float]] = []
    names = dict(w.rooms)
    if names:
        marks = ",".join("?" * len(names))
        for room_id, latest in db.execute(
            f"SELECT room_id, max(time) FROM messages WHERE room_id IN ({marks})"
            " AND time >= ? AND time <= ? GROUP BY room_id",
            [*names, w.since, w.until],
        ):
            found.append((names[room_id], True, latest))
    if w.account:
        me = fold(w.account)
        peers: dict[str, tuple[str, float]] = {}
        for sender, account, target, latest in db.execute(
            "SELECT sender, account, target, max(time) FROM private_messages"
            " WHERE (lower(account) = ? OR lower(target_account) = ?)"
            " AND time >= ? AND time <= ? GROUP BY sender, target",
            [me, me, max(w.since, w.account_since), w.until],
        ):
            peer = target if fold(account or "") == me else sender
            old = peers.get(fold(peer))
            if old is None or old[1] < latest:
                peers[fold(peer)] = (peer, latest)
        found.extend((peer, False, latest) for peer, latest in peers.values())
    found.sort(key=lambda t: t[2])
    kept = found[-w.limit :] if w.newest else found[: w.limit]
    return HistoryTargets(tuple(kept), w.tag)


def export_row(
    mid: int, ts: float, room: str, sender: str, account: str | None, kind: str, text: str
) -> dict[str, Any]:
    """One exported message (``salas admin history export``), whatever the store."""
    return {
        "id": mid,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
        + f".{int(ts * 1000) % 1000:03d}Z",
        "room": room,
        "sender": sender,
        "account": account,
        "kind": kind,
        "text": text,
    }


def export_room(path: Path, room: str) -> Iterator[dict[str, Any]]:
    """Every kept message of every room that has had this name, oldest first."""
    db = connect(path, readonly=True)
    try:
        rows = db.execute(
            "SELECT m.id, m.time, r.name, m.sender, m.account, m.kind, m.text FROM messages m"
            " JOIN rooms r ON r.id = m.room_id WHERE r.key = ? ORDER BY m.id",
            (fold(room.removeprefix("#")),),
        )
        for row in rows:
            yield export_row(*row)
    except sqlite3.Error as err:
        raise StoreError(f"{path}: {err}") from err
    finally:
        db.close()
