"""The store in PostgreSQL (``[store] url = "postgresql://..."``, asyncpg).

The same tables, meaning and schema versions as the SQLite store, so that
several salas nodes can share accounts, rooms and history.

asyncpg is async only, and the server reads the store synchronously twice:
``load()`` at start and ``recent()`` when a room's tail is first needed. So
``open()`` (awaited before ``load()``) reads everything those two calls can
ask for: rooms, accounts, the highest ids, and each live room's latest
``history.on_join`` messages, in one query per kind.

Writes go through one task on the event loop with a connection of its own.
The server submits each loop turn's records; the task takes everything
waiting, writes it in one transaction (group commit) and only then reports
the turns as safe. History queries and retention run on the same task, in
order with the writes, so an answer includes everything submitted before it.
When the database can't be written (down, unreachable, full), the failure
is reported, the records are kept and tried again every second, on a new
connection if the old one is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from salas.config import hide_password
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
from salas.store.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from salas.store.sqlite import export_row

log = logging.getLogger("salas")

#: Seconds between attempts to write records that failed (database down, full).
RETRY_PERIOD = 1.0
#: Seconds to wait for a connection to the database.
CONNECT_TIMEOUT = 10.0
#: Seconds one statement may take before it counts as failed (and is tried again).
COMMAND_TIMEOUT = 60.0
#: The advisory lock that makes schema changes one node at a time (any number
#: that no other application on the database uses; this one spells "salas").
SCHEMA_LOCK = 0x73616C6173
#: Shown in ``pg_stat_activity``: which schema version each connected node runs.
APP_NAME = "salas schema {}"

#: How each schema version is reached from the one before it; a new database
#: goes through them all. Version numbers mean the same tables as the SQLite
#: store's ``PRAGMA user_version``: PostgreSQL support starts at version 3,
#: whose tables the first step makes whole. Never edit a step that has
#: shipped: add the next.
#:
#: Names are compared by ASCII case mapping (``core.names.fold``); so is
#: ``lower(x COLLATE "C")`` in every locale, which is why indexes and
#: queries use that form.
STEPS: tuple[tuple[int, str], ...] = (
    (
        3,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
        INSERT INTO meta (key, value) VALUES ('last_message_id', 0);
        CREATE TABLE rooms (
            id BIGINT PRIMARY KEY,
            key TEXT NOT NULL,
            name TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            closed_at DOUBLE PRECISION,
            owner TEXT,
            lim INTEGER,
            password TEXT,
            private BOOLEAN NOT NULL DEFAULT false,
            topic TEXT NOT NULL DEFAULT '',
            topic_by TEXT NOT NULL DEFAULT '',
            topic_at DOUBLE PRECISION NOT NULL DEFAULT 0,
            flags TEXT NOT NULL DEFAULT 'nt',
            bans TEXT NOT NULL DEFAULT '[]'
        );
        CREATE UNIQUE INDEX rooms_live ON rooms(key) WHERE closed_at IS NULL;
        CREATE TABLE messages (
            id BIGINT PRIMARY KEY,
            room_id BIGINT NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            sender TEXT NOT NULL,
            username TEXT NOT NULL,
            host TEXT NOT NULL,
            kind TEXT NOT NULL,
            text TEXT NOT NULL,
            account TEXT
        );
        CREATE INDEX messages_by_room ON messages(room_id, id);
        CREATE TABLE accounts (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            hash TEXT NOT NULL,
            oper BOOLEAN NOT NULL DEFAULT false,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE private_messages (
            id BIGINT PRIMARY KEY,
            time DOUBLE PRECISION NOT NULL,
            sender TEXT NOT NULL,
            username TEXT NOT NULL,
            host TEXT NOT NULL,
            kind TEXT NOT NULL,
            text TEXT NOT NULL,
            account TEXT,
            target TEXT NOT NULL,
            target_account TEXT
        );
        CREATE INDEX private_sent_by ON private_messages(lower(account COLLATE "C"), id);
        CREATE INDEX private_sent_to ON private_messages(lower(target_account COLLATE "C"), id)
        """,
    ),
)
SCHEMA_VERSION = STEPS[-1][0]
assert SCHEMA_VERSION == SQLITE_SCHEMA_VERSION, "one schema version for both stores"


def _fold(column: str) -> str:
    return f'lower({column} COLLATE "C")'


# Inserts skip rows already there: a commit whose answer was lost (the
# connection dropped after COMMIT) is tried again, and must not fail on what
# it already wrote. (So COPY, which can't skip, is not used: executemany
# pipelines the rows in one round trip anyway.)
_INSERT_MESSAGE = (
    "INSERT INTO messages (id, room_id, time, sender, username, host, kind, text, account)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (id) DO NOTHING"
)
_INSERT_PRIVATE = (
    "INSERT INTO private_messages (id, time, sender, username, host, kind, text, account,"
    " target, target_account) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
    " ON CONFLICT (id) DO NOTHING"
)
_SAVE_ROOM = (
    "INSERT INTO rooms (id, key, name, created_at, owner, lim, password, private, topic,"
    " topic_by, topic_at, flags, bans) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)"
    " ON CONFLICT (id) DO UPDATE SET key=excluded.key, name=excluded.name,"
    " owner=excluded.owner, lim=excluded.lim, password=excluded.password,"
    " private=excluded.private, topic=excluded.topic, topic_by=excluded.topic_by,"
    " topic_at=excluded.topic_at, flags=excluded.flags, bans=excluded.bans"
)
_SAVE_ACCOUNT = (
    "INSERT INTO accounts (key, name, hash, oper, created_at) VALUES ($1,$2,$3,$4,$5)"
    " ON CONFLICT (key) DO UPDATE SET name=excluded.name, hash=excluded.hash,"
    " oper=excluded.oper"
)
_COLUMNS = "id, time, sender, username, host, kind, text, account"
_PRIVATE_COLUMNS = "id, time, sender, username, host, kind, text, account, target, target_account"


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    url: str
    #: Retention: drop messages older than this many days (0: keep them).
    retention_days: float = 0.0
    #: Retention: keep at most this many messages per room (0: no cap).
    retention_messages: int = 0
    #: Messages per room read at start for ``recent()`` (``history.on_join``).
    tail: int = 20


def describe(err: BaseException) -> str:
    """An asyncpg or socket error in one line, for the operator."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text or type(err).__name__


def _is_lost(err: BaseException) -> bool:
    """The connection itself failed (rather than one statement)."""
    return isinstance(
        err,
        OSError
        | TimeoutError
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | asyncpg.AdminShutdownError
        | asyncpg.CannotConnectNowError,
    )


async def connect(url: str) -> asyncpg.Connection:
    """A connection that names this node's schema version; StoreError says why not."""
    try:
        return await asyncpg.connect(
            url,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            server_settings={"application_name": APP_NAME.format(SCHEMA_VERSION)},
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
        raise StoreError(f"{_shown(url)}: can't connect ({describe(err)})") from err
    except ValueError as err:  # a URL asyncpg can't parse
        raise StoreError(f"{_shown(url)}: not a usable PostgreSQL URL ({err})") from err


def _shown(url: str) -> str:
    return hide_password(url)


async def migrate(conn: asyncpg.Connection, where: str) -> int:
    """Bring the database up to ``SCHEMA_VERSION``; returns the version found.

    One node at a time (an advisory lock held by the transaction), all or
    nothing (one transaction). A database from a newer salas is refused and
    left as it was; so is an upgrade while nodes of the older version are
    still connected (they would write the old way into the new tables).
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        tables = {
            r[0]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
            )
        }
        found = 0
        if "meta" in tables:
            found = int(
                await conn.fetchval("SELECT value FROM meta WHERE key = 'schema_version'") or 0
            )
        elif tables & {"rooms", "messages", "accounts"}:
            raise StoreError(
                f"{where}: has tables (rooms, messages or accounts) but no salas schema"
                " version: give salas a database of its own"
            )
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"{where} has schema version {found}, newer than this salas knows"
                f" ({SCHEMA_VERSION}): run the newer salas on every node, or restore a backup"
            )
        if found == SCHEMA_VERSION:
            return found
        if found:
            others = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = $1 AND pid <> pg_backend_pid()",
                APP_NAME.format(found),
            )
            if others:
                raise StoreError(
                    f"{where} is in use by {others} salas node(s) of schema version {found}:"
                    f" stop them before upgrading it to {SCHEMA_VERSION}"
                )
        for version, script in STEPS:
            if version > found:
                await conn.execute(script)
                if found:
                    log.info("store: %s upgraded to schema version %d", where, version)
        await conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', $1)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            SCHEMA_VERSION,
        )
    return found


class PostgresStore:
    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self.where = _shown(settings.url)
        self._conn: asyncpg.Connection | None = None
        self._loaded: Loaded | None = None
        #: Each live room's latest messages at start (for ``recent()``), oldest first.
        self._tails: dict[int, list[Message]] = {}
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._on_written: OnWritten | None = None
        #: The last commit failed, and why.
        self._failing = False
        self._last_error: str | None = None

    # -- start -------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create or upgrade the schema, and read what ``load()`` and
        ``recent()`` will be asked for."""
        conn = await connect(self.settings.url)
        try:
            await migrate(conn, self.where)
            self._loaded, self._tails = await self._read(conn)
        except asyncpg.PostgresError as err:
            await conn.close()
            raise StoreError(f"{self.where}: {describe(err)}") from err
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def _read(self, conn: asyncpg.Connection) -> tuple[Loaded, dict[int, list[Message]]]:
        rooms = tuple(
            RoomRecord(
                id=r[0],
                key=r[1],
                name=r[2],
                created_at=r[3],
                owner=r[4],
                limit=r[5],
                password=r[6],
                private=r[7],
                topic=r[8],
                topic_by=r[9],
                topic_at=r[10],
                flags=r[11],
                bans=tuple(json_list(r[12])),
            )
            for r in await conn.fetch(
                "SELECT id, key, name, created_at, owner, lim, password, private, topic,"
                " topic_by, topic_at, flags, bans FROM rooms WHERE closed_at IS NULL ORDER BY id"
            )
        )
        accounts = tuple(
            AccountRecord(r[0], r[1], r[2], r[3], r[4])
            for r in await conn.fetch("SELECT key, name, hash, oper, created_at FROM accounts")
        )
        last_message = await conn.fetchval(
            "SELECT greatest(coalesce((SELECT max(id) FROM messages), 0),"
            " coalesce((SELECT max(id) FROM private_messages), 0),"
            " coalesce((SELECT value FROM meta WHERE key = 'last_message_id'), 0))"
        )
        last_room = await conn.fetchval("SELECT coalesce(max(id), 0) FROM rooms")
        tails: dict[int, list[Message]] = {}
        if self.settings.tail > 0:
            # Each live room's newest messages: one walk down the (room_id, id)
            # index per room (LATERAL ... LIMIT), however long the history.
            names = {r.id: r.name for r in rooms}
            for r in await conn.fetch(
                f"SELECT r.id, m.{', m.'.join(_COLUMNS.split(', '))} FROM rooms r"
                f" CROSS JOIN LATERAL (SELECT {_COLUMNS} FROM messages"
                "  WHERE room_id = r.id ORDER BY id DESC LIMIT $1) m"
                " WHERE r.closed_at IS NULL ORDER BY r.id, m.id",
                self.settings.tail,
            ):
                tails.setdefault(r[0], []).append(read_message(tuple(r)[1:], names[r[0]]))
        return Loaded(rooms, accounts, int(last_message), int(last_room)), tails

    def load(self) -> Loaded:
        if self._loaded is None:
            raise StoreError(f"{self.where}: the store was not opened")
        return self._loaded

    def recent(self, room_id: int, room_name: str, limit: int) -> list[Message]:
        """From what ``open()`` read: a room's tail is asked for before anything
        is said in it, and rooms made since then have none."""
        kept = self._tails.get(room_id)
        if not kept or limit <= 0:
            return []
        return [
            m if m.room == room_name else Message(m.id, m.time, room_name, m.sender, m.text, m.kind)
            for m in kept[-limit:]
        ]

    def start(self, loop: asyncio.AbstractEventLoop, on_written: OnWritten) -> None:
        self._on_written = on_written
        self._task = loop.create_task(self._run(), name="salas-store")

    # -- on the event loop -------------------------------------------------------

    def submit(self, seq: int, records: list[Record]) -> None:
        self._queue.put_nowait((seq, records))

    def query(self, wanted: HistoryWanted | TargetsWanted, reply: Reply) -> None:
        self._queue.put_nowait((wanted, reply))

    def prune(self, now: float) -> None:
        self._queue.put_nowait(("prune", now))

    async def close(self) -> None:
        task = self._task
        if task is not None:
            self._queue.put_nowait(None)
            try:
                await task
            except Exception:
                log.exception("store: the writer stopped with an error")
            self._task = None
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT)

    # -- the writer task -----------------------------------------------------------

    async def _run(self) -> None:
        queue = self._queue
        failed: list[Record] = []  # records that did not commit: tried again, first
        while True:
            if failed:
                try:
                    item = await asyncio.wait_for(queue.get(), RETRY_PERIOD)
                except TimeoutError:
                    failed = await self._commit(failed, 0)
                    continue
            else:
                item = await queue.get()
            items = [item]
            while not queue.empty():
                items.append(queue.get_nowait())
            pending, failed, seq, stop = failed, [], 0, False
            for it in items:
                if it is None:
                    stop = True
                elif type(it[0]) is int:  # (seq, records): one loop turn's journal
                    seq = it[0]
                    pending.extend(it[1])
                else:  # a query: after everything submitted before it
                    if seq or pending:
                        pending, seq = await self._commit(pending, seq), 0
                    await self._answer(it)
            if seq or pending:
                pending = await self._commit(pending, seq)
            failed = pending
            if stop:
                if failed:
                    log.error("store: %d record(s) could not be written", len(failed))
                return

    async def _connection(self) -> asyncpg.Connection:
        conn = self._conn
        if conn is None or conn.is_closed():
            self._conn = None
            conn = await connect(self.settings.url)
            # While this node was cut off, a newer one may have upgraded the schema.
            try:
                found = await conn.fetchval("SELECT value FROM meta WHERE key = 'schema_version'")
            except BaseException:
                conn.terminate()
                raise
            if found != SCHEMA_VERSION:
                conn.terminate()
                raise StoreError(
                    f"{self.where} is now at schema version {found}, not {SCHEMA_VERSION}:"
                    " restart this node with the salas that upgraded it"
                )
            self._conn = conn
        return conn

    def _lost(self, err: BaseException) -> None:
        """After a failure: a connection that is broken is dropped (made again next time)."""
        conn = self._conn
        if conn is not None and (_is_lost(err) or conn.is_closed()):
            self._conn = None
            conn.terminate()

    async def _commit(self, records: list[Record], seq: int) -> list[Record]:
        """Write ``records`` in one transaction; returns those still to write."""
        error: str | None = None
        if records:
            try:
                conn = await self._connection()
                try:
                    async with conn.transaction():
                        await _write(conn, records)
                except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError):
                    await _write_each(conn, records)
            except StoreError as err:
                error = str(err)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                error = describe(err)
                self._lost(err)
            except Exception:
                # A bug, not the database: log it, and never stall everyone's output on it.
                log.exception("store: %d record(s) could not be written", len(records))
        if error is not None and self._failing and error != self._last_error:
            # Reported already; the reason has changed (the database is back,
            # but something else is wrong): the operator hears of it.
            log.error("store: still can't write: %s", error)
        self._last_error = error
        if seq or (error is None) == self._failing:
            self._failing = error is not None
            done = self._on_written
            if done is not None:
                # Called as its own callback: whatever it does can't stop the writer.
                asyncio.get_running_loop().call_soon(done, seq, error)
        return records if error is not None else []

    async def _answer(self, item: tuple[Any, ...]) -> None:
        what = item[0]
        if what == "prune":
            try:
                await self._prune(await self._connection(), item[1])
            except Exception as err:
                log.warning("store: retention failed (tried again later): %s", describe(err))
                self._lost(err)
            return
        reply: Reply = item[1]
        try:
            conn = await self._connection()
            answer: HistoryReply | HistoryTargets
            if isinstance(what, TargetsWanted):
                answer = await _targets(conn, what)
            else:
                answer = await _history(conn, what)
        except Exception as err:  # the asker gets an empty answer, never none
            log.error("store: history query failed: %s", describe(err))
            self._lost(err)
            if isinstance(what, TargetsWanted):
                answer = HistoryTargets((), what.tag)
            else:
                answer = HistoryReply(what.target, bool(what.room_id), (), "request", what.tag)
        asyncio.get_running_loop().call_soon(reply, answer)

    async def _prune(self, conn: asyncpg.Connection, now: float) -> None:
        """Retention. ``retention_messages`` counts per room; private messages
        are bounded by ``retention_days`` only."""
        s = self.settings
        if s.retention_days <= 0 and s.retention_messages <= 0:
            return
        removed = 0
        async with conn.transaction():
            # Whatever goes, the ids given so far are never given again.
            await conn.execute(
                "UPDATE meta SET value = greatest(value,"
                " coalesce((SELECT max(id) FROM messages), 0),"
                " coalesce((SELECT max(id) FROM private_messages), 0))"
                " WHERE key = 'last_message_id'"
            )
            if s.retention_days > 0:
                cutoff = now - s.retention_days * 86400
                for table in ("messages", "private_messages"):
                    # Ids grow with time: everything below the first id young
                    # enough goes (no index on time to keep up on every insert).
                    first = await conn.fetchval(
                        f"SELECT id FROM {table} WHERE time >= $1 ORDER BY id LIMIT 1", cutoff
                    )
                    if first is None:
                        status = await conn.execute(f"DELETE FROM {table}")
                    else:
                        status = await conn.execute(f"DELETE FROM {table} WHERE id < $1", first)
                    removed += _count(status)
            if s.retention_messages > 0:
                status = await conn.execute(
                    "DELETE FROM messages WHERE id IN (SELECT id FROM (SELECT id, row_number()"
                    " OVER (PARTITION BY room_id ORDER BY id DESC) AS n FROM messages) t"
                    " WHERE n > $1)",
                    s.retention_messages,
                )
                removed += _count(status)
        if removed:
            log.info("store: retention removed %d message(s)", removed)


def _count(status: str) -> int:
    """Rows a statement touched, from its status (``DELETE 12``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def _write_each(conn: asyncpg.Connection, records: list[Record]) -> None:
    """After a refused transaction: each record on its own, so that one the
    database refuses takes nothing else with it. Two nodes making the same
    room at the same moment get here too (``ON CONFLICT`` covers the id, not
    the index of live names); alone, the other's row is there to update."""
    for record in records:
        try:
            async with conn.transaction():
                await _write(conn, [record])
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as err:
            # Not the database's fault: trying again can't help, and must not block the rest.
            log.error("store: a record refused and dropped (%s): %s", _what(record), err)


def _what(record: Record) -> str:
    if isinstance(record, tuple):
        return f"message {record[1].id}"
    return type(record).__name__


async def _write(conn: asyncpg.Connection, records: list[Record]) -> None:
    for step in steps(records):
        match step:
            case (list() as said, list() as private):
                if said:
                    await conn.executemany(_INSERT_MESSAGE, said)
                if private:
                    await conn.executemany(_INSERT_PRIVATE, private)
            case RoomRecord():
                await conn.execute(_SAVE_ROOM, *room_row(step))
            case RoomClosed():
                await conn.execute(
                    "UPDATE rooms SET closed_at = $1 WHERE id = $2", step.at, step.id
                )
            case AccountRecord():
                await conn.execute(_SAVE_ACCOUNT, *account_row(step))
            case AccountDeleted():
                await conn.execute("DELETE FROM accounts WHERE key = $1", step.key)
            case IdsUsed():
                await conn.execute(
                    "UPDATE meta SET value = greatest(value, $1) WHERE key = 'last_message_id'",
                    step.upto,
                )


def _bound_sql(b: Bound, op: str, n: int) -> tuple[str, float | int]:
    if b.id is not None:
        return f"id {op} ${n}", b.id
    return f"time {op} ${n}::double precision", b.time or 0.0


async def _history(conn: asyncpg.Connection, w: HistoryWanted) -> HistoryReply:
    """The SQL form of ``store.base.select`` (tests hold the two to the same answers)."""
    args: list[object]
    if w.room_id:
        table, columns = "messages", _COLUMNS
        where, args = "room_id = $1", [w.room_id]
    else:
        table, columns = "private_messages", _PRIVATE_COLUMNS
        me, other = fold(w.account or ""), fold(w.target)
        if w.peer_account:
            # ``memory.private_between`` in SQL: the other's account decides
            # where it was logged in, its name where it wasn't.
            where = (
                f"(({_fold('account')} = $1 AND ({_fold('target_account')} = $3"
                f" OR (target_account IS NULL AND {_fold('target')} = $2)))"
                f" OR ({_fold('target_account')} = $1 AND ({_fold('account')} = $3"
                f" OR (account IS NULL AND {_fold('sender')} = $2)))) AND time >= $4"
            )
            args = [me, other, fold(w.peer_account), w.since]
        else:
            where = (
                f"(({_fold('account')} = $1 AND {_fold('target')} = $2)"
                f" OR ({_fold('target_account')} = $1 AND {_fold('sender')} = $2))"
                " AND time >= $3"
            )
            args = [me, other, w.since]

    async def run(bounds: list[tuple[Bound, str]], newest_first: bool, limit: int) -> list[Any]:
        clauses, values = [f"({where})"], list(args)
        for b, op in bounds:
            sql, value = _bound_sql(b, op, len(values) + 1)
            clauses.append(sql)
            values.append(value)
        order = "DESC" if newest_first else "ASC"
        rows: list[Any] = await conn.fetch(
            f"SELECT {columns} FROM {table} WHERE {' AND '.join(clauses)}"
            f" ORDER BY id {order} LIMIT ${len(values) + 1}",
            *values,
            limit,
        )
        return rows[::-1] if newest_first else rows

    start, end, limit = w.start, w.end, w.limit
    rows: list[Any] = []
    if limit <= 0:
        rows = []
    elif w.mode == "latest":
        rows = await run([(start, ">")] if start else [], True, limit)
    elif start is None:
        rows = []
    elif w.mode == "before":
        rows = await run([(start, "<")], True, limit)
    elif w.mode == "after":
        rows = await run([(start, ">")], False, limit)
    elif w.mode == "around":
        half = limit // 2
        older = await run([(start, "<")], True, half) if half else []
        rows = older + await run([(start, ">=")], False, limit - len(older))
    elif end is not None:
        # Bounds of two kinds compare by the time of the message one names.
        mid = start.id if start.id is not None else end.id
        mixed = (start.id is None) != (end.id is None) and mid is not None
        when: float | None = None
        if mixed:
            when = await conn.fetchval(
                f"SELECT time FROM {table} WHERE ({where}) AND id = ${len(args) + 1}", *args, mid
            )
        if ascending(start, end, lambda _: when):
            rows = await run([(start, ">"), (end, "<")], False, limit)
        else:
            rows = await run([(start, "<"), (end, ">")], True, limit)
    found: tuple[Message | Private, ...] = (
        tuple(read_message(r, w.target) for r in rows)
        if w.room_id
        else tuple(read_private(r) for r in rows)
    )
    return HistoryReply(w.target, bool(w.room_id), found, "request", w.tag)


async def _targets(conn: asyncpg.Connection, w: TargetsWanted) -> HistoryTargets:
    found: list[tuple[str, bool, float]] = []
    names = dict(w.rooms)
    if names:
        for room_id, latest in await conn.fetch(
            "SELECT room_id, max(time) FROM messages WHERE room_id = ANY($1::bigint[])"
            " AND time >= $2 AND time <= $3 GROUP BY room_id",
            list(names),
            w.since,
            w.until,
        ):
            found.append((names[room_id], True, latest))
    if w.account:
        me = fold(w.account)
        peers: dict[str, tuple[str, float]] = {}
        for sender, account, target, latest in await conn.fetch(
            "SELECT sender, account, target, max(time) FROM private_messages"
            f" WHERE ({_fold('account')} = $1 OR {_fold('target_account')} = $1)"
            " AND time >= $2 AND time <= $3 GROUP BY sender, account, target",
            me,
            max(w.since, w.account_since),
            w.until,
        ):
            peer = target if fold(account or "") == me else sender
            old = peers.get(fold(peer))
            if old is None or old[1] < latest:
                peers[fold(peer)] = (peer, latest)
        found.extend((peer, False, latest) for peer, latest in peers.values())
    found.sort(key=lambda t: t[2])
    kept = found[-w.limit :] if w.newest else found[: w.limit]
    return HistoryTargets(tuple(kept), w.tag)


async def export_room(url: str, room: str) -> list[dict[str, Any]]:
    """Every kept message of every room that has had this name, oldest first."""
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT m.id, m.time, r.name, m.sender, m.account, m.kind, m.text FROM messages m"
            " JOIN rooms r ON r.id = m.room_id WHERE r.key = $1 ORDER BY m.id",
            fold(room.removeprefix("#")),
        )
    except asyncpg.PostgresError as err:
        raise StoreError(f"{_shown(url)}: {describe(err)}") from err
    finally:
        await conn.close()
    return [export_row(*r) for r in rows]
