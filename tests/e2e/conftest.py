from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import RunningServer, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    """A real ``salas serve`` with the line and CS168 doors on free loopback ports."""
    srv = start_server(tmp_path, ("line", "cs168"))
    yield srv
    srv.stop()
