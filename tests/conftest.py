"""Fixtures shared across the layers: a real PostgreSQL (see ``tests/pg.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pg import Cluster, Unavailable, start_cluster


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
