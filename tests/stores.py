"""Helpers for the store tests: records to write, a started store and what it
reported, and each kind of store (SQLite, PostgreSQL) behind one face so the
same tests run on both."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salas.core.events import HistoryReply, HistoryTargets, HistoryWanted, Message, Private
from salas.core.model import UserRef
from salas.core.records import Loaded, RoomRecord
from salas.store.base import Store
from salas.store.sqlite import DB_NAME, SqliteSettings, SqliteStore

T0 = 1_760_000_000.0
#: Seconds any one wait in these tests may take (the writer answers in ms).
WAIT = 10.0

ANA = UserRef(0, "ana", "~ana", "10.0.0.1", "ana")
GUEST = UserRef(0, "guest12345", "guest12345", "10.0.0.2", None)


def room(rid: int, name: str, **changes: object) -> RoomRecord:
    fields: dict[str, object] = {
        "id": rid,
        "key": name.lower(),
        "name": name,
        "created_at": T0,
        "owner": None,
        "limit": None,
        "password": None,
        "private": False,
        "topic": "",
        "topic_by": "",
        "topic_at": 0.0,
        "flags": "nt",
        "bans": (),
    }
    fields.update(changes)
    return RoomRecord(**fields)  # type: ignore[arg-type]


def say(
    mid: int, room_name: str, text: str, at: float | None = None, who: UserRef = ANA
) -> Message:
    return Message(mid, T0 + mid if at is None else at, room_name, who, text)


def tell(mid: int, text: str, to: str = "bo", to_account: str | None = "bo") -> Private:
    return Private(mid, T0 + mid, ANA, UserRef(0, to, to, "", to_account), text)


def latest(room_id: int, name: str, limit: int = 100) -> HistoryWanted:
    return HistoryWanted(name, room_id, "ana", "ana", "latest", None, None, limit)


class Writer:
    """A started store, and what its writer has reported to the loop."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.reports: list[tuple[int, str | None]] = []
        self._news = asyncio.Event()
        store.start(asyncio.get_running_loop(), self._written)

    def _written(self, seq: int, error: str | None) -> None:
        self.reports.append((seq, error))
        self._news.set()

    async def until(self, ok: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not ok():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"waited {WAIT}s for {what}; reports: {self.reports}")
            self._news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), left)

    def last_good(self) -> int:
        return max((seq for seq, err in self.reports if err is None), default=0)

    async def written(self, seq: int) -> None:
        """Until the writer says turn ``seq`` is kept (without an error)."""
        await self.until(lambda: self.last_good() >= seq, f"turn {seq} written")

    async def ask(self, wanted: HistoryWanted) -> HistoryReply:
        got: asyncio.Future[HistoryReply | HistoryTargets] = (
            asyncio.get_running_loop().create_future()
        )
        self.store.query(wanted, got.set_result)
        answer = await asyncio.wait_for(got, WAIT)
        assert isinstance(answer, HistoryReply)
        return answer


@dataclass
class Backend:
    """One kind of store, opened as often as a test likes on the same data."""

    kind: str
    path: Path | None = None  # SQLite
    url: str | None = None  # PostgreSQL

    async def open(self, **settings: Any) -> Store:
        """A store on this backend's data, opened (not started)."""
        store: Store
        if self.kind == "sqlite":
            assert self.path is not None
            store = SqliteStore(SqliteSettings(self.path, **settings))
        else:
            from salas.store.postgres import PostgresSettings, PostgresStore

            assert self.url is not None
            store = PostgresStore(PostgresSettings(self.url, **settings))
        await store.open()
        return store

    async def reopen_load(self, **settings: Any) -> tuple[Store, Loaded]:
        store = await self.open(**settings)
        return store, store.load()

    async def writer(self, **settings: Any) -> Writer:
        return Writer(await self.open(**settings))

    async def column(self, sql: str) -> list[Any]:
        """The first column of what ``sql`` (the same text on both) gives."""
        if self.kind == "sqlite":
            db = sqlite3.connect(self.path or "")
            try:
                return [r[0] for r in db.execute(sql)]
            finally:
                db.close()
        import asyncpg

        conn = await asyncpg.connect(self.url)
        try:
            return [r[0] for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    async def export(self, name: str) -> list[dict[str, Any]]:
        if self.kind == "sqlite":
            from salas.store.sqlite import export_room

            assert self.path is not None
            return list(export_room(self.path, name))
        from salas.store.postgres import export_room as export_pg

        assert self.url is not None
        return await export_pg(self.url, name)


def sqlite_backend(tmp_path: Path) -> Backend:
    return Backend("sqlite", path=tmp_path / DB_NAME)
