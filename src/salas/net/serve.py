"""``salas serve``: open the doors, run until SIGINT/SIGTERM, then close politely."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from pathlib import Path

from salas import __version__
from salas.config import Config, postgres_url, store_label, store_path
from salas.core.hub import Hub, HubSettings
from salas.logs import Logs, Recent
from salas.net.admin import AdminServer, AdminSocketError, check_private_dir
from salas.net.bus import BusError, RedisBus
from salas.net.doors import door_factories
from salas.net.server import Server
from salas.store.base import Store, StoreError
from salas.store.memory import MemoryStore
from salas.store.sqlite import SqliteSettings, SqliteStore

log = logging.getLogger("salas")

#: Allocations between young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 20_000


def prepare_data_dir(path: Path) -> None:
    """Make the data dir (private to this user) if it is missing; refuse one that
    others may write (they could replace the store or the admin socket)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not os.access(path, os.W_OK):
        raise OSError(f"data dir {path} is not writable")
    try:
        check_private_dir(path)
    except AdminSocketError as err:
        raise OSError(str(err)) from None


async def serve(config: Config) -> int:
    data_dir = config.data_path()
    prepare_data_dir(data_dir)
    logs = Logs(config.log, data_dir)
    try:
        for warning in config.warnings:
            log.warning("config: %s", warning)
        return await _serve(config, data_dir, logs.recent)
    finally:
        logs.close()


def open_store(config: Config, data_dir: Path) -> Store:
    """The store the configuration names; StoreError says why it can't be opened.

    Call ``await store.open()`` before ``store.load()``.
    """
    hist = config.history
    url = postgres_url(config)
    if url is not None:
        try:
            from salas.store.postgres import PostgresSettings, PostgresStore
        except ImportError as err:
            if err.name != "asyncpg":
                raise
            raise StoreError(
                "store.url is a PostgreSQL URL, which needs asyncpg:"
                " install salas[postgres] (pip install 'salas[postgres]')"
            ) from None
        return PostgresStore(
            PostgresSettings(url, hist.retention_days, hist.retention_messages, hist.on_join)
        )
    path = store_path(config)
    if path is None:
        return MemoryStore(hist.retention_messages)
    settings = SqliteSettings(
        path, config.store.fsync, hist.retention_days, hist.retention_messages
    )
    return SqliteStore(settings, lock_dir=data_dir)


async def _serve(config: Config, data_dir: Path, recent: Recent | None = None) -> int:
    loop = asyncio.get_running_loop()
    lim = config.limits
    try:
        store = open_store(config, data_dir)
        try:
            await store.open()
            loaded = store.load()
        except BaseException:
            await store.close()
            raise
    except StoreError as err:
        log.error("salas: %s", err)
        return 1
    except OSError as err:
        log.error("salas: cannot open the store: %s", err)
        return 1
    settings = HubSettings(
        server_name=config.server.name,
        lobby=config.server.lobby,
        max_rooms=lim.max_rooms,
        empty_room_ttl=lim.empty_room_ttl,
        history_on_join=config.history.on_join,
        history_max=config.history.max_request,
        history_kept=config.history.retention_messages,
        direct=config.direct.enabled,
        offer_ttl=config.direct.offer_ttl,
    )

    bus: RedisBus | None = None

    async def from_store() -> Hub:
        nonlocal store, loaded
        if bus is not None:
            # The first node of a chat, under the bus's start lock: read the
            # store again, after any node that was stopping wrote its last.
            await store.close()
            store = open_store(config, data_dir)
            await store.open()
            loaded = store.load()
        return Hub(settings, loaded=loaded, recent=store.recent, now=time.time())

    if config.bus.url:
        if postgres_url(config) is None:
            log.warning(
                "bus: the store is not PostgreSQL: each node keeps its own history,"
                " and a node that joins later has none of what was said before"
            )
        bus = RedisBus(config.bus)
        try:
            # A node that joins a running chat takes its state from the others.
            hub = await bus.start(from_store, lambda: Hub(settings))
        except (BusError, StoreError) as err:
            log.error("salas: %s", err)
            await store.close()
            return 1
    else:
        hub = await from_store()
    server = Server(config, hub, loop, store)
    if bus is not None:
        server.use_bus(bus)
        bus.attach(server)
    admin = AdminServer(server, recent, data_dir)
    try:
        await admin.start()
        bound = await server.start(door_factories(config))
    except (OSError, AdminSocketError) as err:
        what = "cannot listen" if isinstance(err, OSError) else "cannot open the admin socket"
        log.error("salas: %s: %s", what, getattr(err, "strerror", None) or err)
        for srv in server.servers:
            srv.close()
        await admin.close()
        if bus is not None:
            await bus.leave("")
            await bus.close()
        await store.close()
        return 1
    log.info(
        "store: %s (%d rooms, %d accounts)",
        store_label(config),
        len(loaded.rooms),
        len(loaded.accounts),
    )
    # A chat server allocates many short-lived objects per message and few that
    # last: move what exists now out of the collector's sight and collect the
    # young generation less often (each pass is cheaper than the default's).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    log.info("Chat server started: salas %s, data in %s", __version__, data_dir)
    for door, host, port in bound:
        shown = f"[{host}]" if ":" in host else host
        log.info("listening: %s on %s:%d", door, shown, port)
    if admin.listening:
        log.info("admin console: salas admin --data-dir %s (socket %s)", data_dir, admin.path)

    stop = asyncio.Event()
    reasons: list[str] = []

    def stop_for(reason: str) -> None:
        reasons.append(reason)
        stop.set()

    server.on_stop = stop_for
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("shutting down: telling %d user(s)", len(hub.users))
    await server.shutdown(reasons[0] if reasons else "")
    if bus is not None:
        await bus.close()
    await admin.close()
    log.info("stopped")
    return server.exit_code
