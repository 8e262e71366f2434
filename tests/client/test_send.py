"""``salas send`` checks what it can before it connects."""

from __future__ import annotations

import asyncio

import pytest

from salas.client.link import Target
from salas.client.send import send_one


def test_a_slash_line_for_the_cs168_door_is_refused_before_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Port 1: nothing listens there, so a connection attempt would fail differently.
    nowhere = Target("cs168", "127.0.0.1", 1)
    assert asyncio.run(send_one(nowhere, "lobby", "built\n/create x", "ci")) == 2
    assert "takes a line that starts with / as a command" in capsys.readouterr().err
