"""Fixtures shared across the layers: a real PostgreSQL (``tests/pg.py``) and a
real Redis (``tests/redisrv.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pg import Cluster, Unavailable, start_cluster
from redisrv import RedisServer
from redisrv import Unavailable as RedisUnavailable


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One PostgreSQL server for the whole run, started on first use."""
    try:
        cluster = start_cluster()
    except Unavailable as why:
        pytest.skip(f"PostgreSQL: {why}")
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """The URL of a fresh, empty database of its own for this test."""
    return pg_cluster.new_database()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis server of this test's own, on a free loopback port."""
    try:
        server = RedisServer()
    except RedisUnavailable as why:
        pytest.skip(f"Redis: {why}")
    yield server
    server.close()
