"""Where the terminal client connects: its URLs, read without a network."""

from __future__ import annotations

import pytest

from salas.client.link import Target, UrlError, parse_url


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("line://example.org:7000", Target("line", "example.org", 7000, "")),
        ("example.org", Target("line", "example.org", 6900, "")),
        ("cs168://[::1]:55555", Target("cs168", "::1", 55555, "")),
        ("ws://localhost:8080/chat", Target("ws", "localhost", 8080, "/chat")),
    ],
)
def test_urls(url: str, target: Target) -> None:
    assert parse_url(url) == target


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("line://[::1", "Invalid IPv6 URL"),
        ("line://host:0", "from 1 to 65535"),
        ("line://host:99999", "from 1 to 65535"),
        ("line://host:port", "from 1 to 65535"),
        ("irc://host:6667", "expected line://HOST:PORT"),
        ("ws://host:8080/ws", "speaks the line protocol"),
    ],
)
def test_bad_urls_are_one_clear_error(url: str, says: str) -> None:
    with pytest.raises(UrlError, match=says):
        parse_url(url)
