"""A client's connection to a door: send a line of text, receive lines of text."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from salas.proto.cs168 import FRAME, decode_frame, frames

DEFAULT_URL = "line://localhost:6900"
DEFAULT_PORTS = {"line": 6900, "cs168": 55555}
#: How long to wait for a server to answer a connect.
CONNECT_TIMEOUT = 5.0


class UrlError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_url(url: str) -> Target:
    if "://" not in url:
        url = "line://" + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("ws", "wss"):
        raise UrlError(f"{url}: the web door (ws://) is not part of this build yet")
    if scheme not in DEFAULT_PORTS:
        raise UrlError(f"{url}: expected line://HOST:PORT or cs168://HOST:PORT")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as err:
        raise UrlError(f"{url}: the port must be a number from 0 to 65535") from err
    return Target(scheme, parts.hostname or "localhost", port)


class Link:
    """Text lines both ways over one door's framing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def recv(self) -> str | None:
        """The next text from the server, or None once it has closed the connection."""
        raise NotImplementedError

    def send(self, text: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class LineLink(Link):
    async def recv(self) -> str | None:
        try:
            raw = await self.reader.readline()
        except (OSError, ValueError):
            return None
        if not raw:
            return None
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    def send(self, text: str) -> None:
        self.writer.write((text + "\n").encode())


class Cs168Link(Link):
    async def recv(self) -> str | None:
        try:
            frame = await self.reader.readexactly(FRAME)
        except (asyncio.IncompleteReadError, OSError):
            return None
        return decode_frame(frame)

    def send(self, text: str) -> None:
        self.writer.write(frames(text))


async def connect(target: Target, name: str | None = None) -> Link:
    """Open a link; CS168 sends its name at once (its first frame)."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(target.host, target.port, limit=1 << 20), CONNECT_TIMEOUT
    )
    if target.scheme == "cs168":
        link: Link = Cs168Link(reader, writer)
        link.send(name or "guest")
    else:
        link = LineLink(reader, writer)
        if name:
            link.send(f"/nick {name}")
    return link
