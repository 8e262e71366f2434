"""The PostgreSQL store on its own: schema versions shared between nodes (a
newer database refused untouched, an upgrade refused while older nodes are
connected, two nodes making the schema at once), ``recent()`` answered from
what was read at start, a database that goes away and comes back, and clear
errors when the database or asyncpg can't be had. What every store does is
in ``test_stores.py``."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import pytest

from pg import Cluster, free_port
from salas.config import from_dict
from salas.store.base import StoreError
from stores import Backend, Writer, latest, room, say

try:
    import asyncpg

    from salas.store import postgres as pgs
    from salas.store.postgres import SCHEMA_VERSION, PostgresSettings, PostgresStore
except ImportError:  # tests that need asyncpg skip (pg_url, or needs_asyncpg); not the last
    asyncpg = None

needs_asyncpg = pytest.mark.skipif(asyncpg is None, reason="asyncpg is not installed")


async def schema_version(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT value FROM meta WHERE key = 'schema_version'"))
    finally:
        await conn.close()


async def test_a_new_database_gets_the_schema_and_its_version(pg_url: str) -> None:
    store = PostgresStore(PostgresSettings(pg_url))
    await store.open()
    try:
        assert store.load().rooms == ()
    finally:
        await store.close()
    assert await schema_version(pg_url) == SCHEMA_VERSION
    # Opening again changes nothing.
    again = PostgresStore(PostgresSettings(pg_url))
    await again.open()
    await again.close()
    assert await schema_version(pg_url) == SCHEMA_VERSION


async def test_two_nodes_starting_at_once_make_the_schema_once(pg_url: str) -> None:
    stores = [PostgresStore(PostgresSettings(pg_url)) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    for s in stores:
        await s.close()
    assert await schema_version(pg_url) == SCHEMA_VERSION


async def test_a_database_from_a_newer_salas_is_refused_untouched(
    pg_url: str, pg_cluster: Cluster
) -> None:
    store = PostgresStore(PostgresSettings(pg_url))
    await store.open()
    await store.close()
    newer = SCHEMA_VERSION + 1
    db = pg_url.rsplit("/", 1)[1]
    pg_cluster.psql(f"UPDATE meta SET value = {newer} WHERE key = 'schema_version'", db)
    before = pg_cluster.psql("SELECT * FROM meta ORDER BY key", db)
    with pytest.raises(StoreError) as err:
        await PostgresStore(PostgresSettings(pg_url)).open()
    text = str(err.value)
    assert "\n" not in text
    assert f"has schema version {newer}, newer than this salas knows ({SCHEMA_VERSION})" in text
    assert f"127.0.0.1:{pg_cluster.port}/{db}" in text
    assert pg_cluster.psql("SELECT * FROM meta ORDER BY key", db) == before


async def test_an_upgrade_waits_for_every_older_node_to_stop(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A build with a schema step more finds a node of the older version still
    connected: it refuses (nothing changed); once that node is gone, it upgrades."""
    old = PostgresStore(PostgresSettings(pg_url))
    await old.open()  # a node of the current version, still running
    step = (SCHEMA_VERSION + 1, "ALTER TABLE rooms ADD COLUMN colour TEXT")
    monkeypatch.setattr(pgs, "STEPS", (*pgs.STEPS, step))
    monkeypatch.setattr(pgs, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    try:
        with pytest.raises(StoreError) as err:
            await PostgresStore(PostgresSettings(pg_url)).open()
        assert f"in use by 1 salas node(s) of schema version {SCHEMA_VERSION}" in str(err.value)
        assert await schema_version(pg_url) == SCHEMA_VERSION
    finally:
        await old.close()
    new = PostgresStore(PostgresSettings(pg_url))
    with caplog.at_level(logging.INFO, logger="salas"):
        await new.open()
    await new.close()
    assert await schema_version(pg_url) == SCHEMA_VERSION + 1
    assert f"upgraded to schema version {SCHEMA_VERSION + 1}" in caplog.text


async def test_a_database_with_other_tables_of_those_names_is_refused(
    pg_url: str, pg_cluster: Cluster
) -> None:
    pg_cluster.psql("CREATE TABLE messages (x int)", pg_url.rsplit("/", 1)[1])
    with pytest.raises(StoreError, match="no salas schema version"):
        await PostgresStore(PostgresSettings(pg_url)).open()


async def test_recent_answers_from_what_was_read_at_start(pg_url: str) -> None:
    backend = Backend("postgres", url=pg_url)
    w = await backend.writer()
    w.store.submit(1, [room(1, "Sala"), room(2, "other")])
    w.store.submit(2, [(1, say(i, "Sala", f"m{i}")) for i in range(1, 31)])
    await w.written(2)
    await w.store.close()
    store = PostgresStore(PostgresSettings(pg_url, tail=5))
    await store.open()
    try:
        got = store.recent(1, "SALA", 20)  # the room's name as the hub has it now
        assert [(m.id, m.room) for m in got] == [(i, "SALA") for i in range(26, 31)]
        assert [m.id for m in store.recent(1, "Sala", 2)] == [29, 30]
        assert store.recent(2, "other", 20) == []
        assert store.recent(1, "Sala", 0) == []
    finally:
        await store.close()


async def test_a_database_that_goes_away_is_reported_and_written_once_back(
    pg_url: str, pg_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its connections are cut and new ones refused: the writer reports the
    failure, keeps the records, tries again, and writes them (once each) on a
    new connection when the database takes connections again."""
    monkeypatch.setattr(pgs, "RETRY_PERIOD", 0.05)
    db = pg_url.rsplit("/", 1)[1]
    w = await Backend("postgres", url=pg_url).writer()
    try:
        w.store.submit(1, [room(1, "Sala"), (1, say(1, "Sala", "before"))])
        await w.written(1)
        pg_cluster.psql(f"ALTER DATABASE {db} ALLOW_CONNECTIONS false")
        pg_cluster.psql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
        )
        w.store.submit(2, [(1, say(2, "Sala", "while away"))])
        await w.until(lambda: any(seq == 2 and err for seq, err in w.reports), "turn 2 fails")
        w.store.submit(3, [(1, say(3, "Sala", "still away"))])
        await w.until(lambda: any(seq == 3 and err for seq, err in w.reports), "turn 3 fails")
        await asyncio.sleep(0.3)  # several retries, all failing, none reported again
        pg_cluster.psql(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        failures = [(seq, err) for seq, err in w.reports if err]
        assert [seq for seq, _ in failures] == [2, 3]
        await w.until(lambda: w.reports[-1][1] is None, "a report that writing works again")
        answer = await w.ask(latest(1, "Sala"))
        assert [m.text for m in answer.messages] == ["before", "while away", "still away"]
    finally:
        pg_cluster.psql(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        await w.store.close()


async def test_a_node_cut_off_while_another_upgraded_the_schema_stops_writing(
    pg_url: str,
    pg_cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its new connection finds another schema version: writes keep failing,
    the log says why, and nothing is written the old way into the new tables."""
    monkeypatch.setattr(pgs, "RETRY_PERIOD", 0.05)
    db = pg_url.rsplit("/", 1)[1]
    w = await Backend("postgres", url=pg_url).writer()
    try:
        w.store.submit(1, [room(1, "Sala")])
        await w.written(1)
        pg_cluster.psql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
        )
        newer = SCHEMA_VERSION + 1
        pg_cluster.psql(f"UPDATE meta SET value = {newer} WHERE key = 'schema_version'", db)
        w.store.submit(2, [(1, say(1, "Sala", "from the old node"))])
        with caplog.at_level(logging.ERROR, logger="salas"):
            await w.until(lambda: any(seq == 2 and err for seq, err in w.reports), "turn 2 fails")
            deadline = time.monotonic() + 10
            while "is now at schema version" not in caplog.text:
                assert time.monotonic() < deadline, caplog.text
                await asyncio.sleep(0.05)
        assert f"is now at schema version {newer}, not {SCHEMA_VERSION}" in caplog.text
        assert pg_cluster.psql("SELECT count(*) FROM messages", db) == "0\n"
    finally:
        await w.store.close()


@needs_asyncpg
async def test_an_unreachable_database_is_a_clear_error_without_the_password() -> None:
    url = f"postgresql://salas:s3cret@127.0.0.1:{free_port()}/salas"
    with pytest.raises(StoreError) as err:
        await PostgresStore(PostgresSettings(url)).open()
    text = str(err.value)
    assert text.startswith(f"postgresql://salas:***@127.0.0.1:{url.split(':')[3]}")
    assert "can't connect" in text and "s3cret" not in text


async def test_a_query_the_database_fails_gets_an_empty_answer(
    pg_url: str, pg_cluster: Cluster
) -> None:
    w = Writer(await Backend("postgres", url=pg_url).open())
    try:
        w.store.submit(1, [room(1, "Sala"), (1, say(1, "Sala", "hi"))])
        await w.written(1)
        pg_cluster.psql("ALTER TABLE messages RENAME TO gone", pg_url.rsplit("/", 1)[1])
        answer = await w.ask(latest(1, "Sala"))
        assert answer.messages == () and answer.target == "Sala"
    finally:
        await w.store.close()


def test_without_asyncpg_a_postgresql_url_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from salas.net.serve import open_store

    monkeypatch.setitem(sys.modules, "asyncpg", None)  # import asyncpg fails
    monkeypatch.delitem(sys.modules, "salas.store.postgres", raising=False)
    cfg = from_dict({"store": {"url": "postgresql://salas@db.example/salas"}})
    with pytest.raises(StoreError, match=r"install salas\[postgres\]"):
        open_store(cfg, cfg.data_path())


async def test_a_record_the_database_refuses_takes_nothing_else_with_it(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two nodes making the same room at the same moment can have the second's
    insert refused by the index of live room names (``ON CONFLICT`` covers the
    id only). That refusal, or any record's, drops that record alone: the
    messages kept in the same turn are still kept."""
    w = await Backend("postgres", url=pg_url).writer()
    other = await asyncpg.connect(pg_url)
    try:
        w.store.submit(1, [room(1, "Sala"), (1, say(1, "Sala", "first"))])
        await w.written(1)
        # A live room named "fresh" under another id: a new one can't be kept.
        await other.execute(pgs._SAVE_ROOM, *pgs.room_row(room(99, "fresh")))
        w.store.submit(2, [(1, say(2, "Sala", "before")), room(2, "Fresh")])
        w.store.submit(2, [(1, say(3, "Sala", "after"))])
        await w.written(2)
        answer = await w.ask(latest(1, "Sala"))
        assert [m.text for m in answer.messages] == ["first", "before", "after"]
        assert await other.fetchval("SELECT count(*) FROM rooms WHERE id = 2") == 0
        dropped = [r.message for r in caplog.records if "refused and dropped" in r.message]
        assert len(dropped) == 1 and "RoomRecord" in dropped[0], dropped
    finally:
        await other.close()
        await w.store.close()
