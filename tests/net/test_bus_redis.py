"""The bus against a real Redis that goes away and comes back."""

from __future__ import annotations

import asyncio

from redisrv import RedisServer
from salas.config import BusSettings
from salas.core.hub import Hub, HubSettings
from salas.net.bus import RedisBus


async def test_after_redis_comes_back_no_connection_to_the_old_one_is_used(
    redis_server: RedisServer,
) -> None:
    bus = RedisBus(BusSettings(url=redis_server.url))

    async def from_store() -> Hub:
        return Hub(HubSettings())

    await bus.start(from_store, lambda: Hub(HubSettings()))
    try:
        # Commands at once hold several connections: the pools keep them.
        await asyncio.gather(*(bus._r.ping() for _ in range(4)))
        redis_server.stop()
        redis_server.start()
        bus._lost(ConnectionError("gone"))
        await asyncio.wait_for(bus._up.wait(), 10)
        # Every command at once works: none is handed a connection to the old Redis.
        assert all(await asyncio.gather(*(bus._r.ping() for _ in range(4))))
    finally:
        await bus.close()
