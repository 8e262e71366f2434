"""A client's connection to a door: send a line of text, receive lines of text."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from salas.proto.cs168 import FRAME, decode_frame, frames

DEFAULT_URL = "line://localhost:6900"
DEFAULT_PORTS = {"line": 6900, "cs168": 55555, "ws": 8080, "wss": 443}
#: The http door's WebSocket that speaks the line protocol.
WS_PATH = "/chat"
#: How long to wait for a server to answer a connect.
CONNECT_TIMEOUT = 5.0
#: How long closing a WebSocket link waits for the lines still queued to go out.
CLOSE_WAIT = 1.0


class UrlError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str = ""

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_url(url: str) -> Target:
    if "://" not in url:
        url = "line://" + url
    try:
        parts = urlsplit(url)
    except ValueError as err:  # an unclosed "[" of an IPv6 address, say
        raise UrlError(f"{url}: {err}") from err
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlError(
            f"{url}: expected line://HOST:PORT, cs168://HOST:PORT or ws://HOST:PORT/chat"
        )
    try:
        port = parts.port if parts.port is not None else DEFAULT_PORTS[scheme]
    except ValueError:
        port = 0
    if not port:  # a server's port, so not 0 either
        raise UrlError(f"{url}: the port must be a number from 1 to 65535")
    path = ""
    if scheme in ("ws", "wss"):
        path = parts.path or WS_PATH
        if path != WS_PATH:
            raise UrlError(f"{url}: the terminal client speaks the line protocol, at {WS_PATH}")
    return Target(scheme, parts.hostname or "localhost", port, path)


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

    def local_host(self) -> str | None:
        """The address this end of the connection uses (direct offers listen there)."""
        info = self.writer.get_extra_info("sockname")
        return str(info[0]) if info else None

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


class WsLink(Link):
    """The line protocol over the http door's ``/chat`` WebSocket: one line a frame."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        # Sends are coroutines; one task sends them in order while callers carry on.
        self._sender = asyncio.ensure_future(self._send_all())

    async def _send_all(self) -> None:
        while True:
            text = await self._queue.get()
            try:
                await self.conn.send(text)
            except (ConnectionClosed, OSError):
                return
            finally:
                self._queue.task_done()

    async def recv(self) -> str | None:
        try:
            data = await self.conn.recv()
        except (ConnectionClosed, OSError):
            return None
        return data if isinstance(data, str) else data.decode("utf-8", "replace")

    def send(self, text: str) -> None:
        self._queue.put_nowait(text)

    def local_host(self) -> str | None:
        try:
            return str(self.conn.local_address[0])
        except (AttributeError, IndexError, TypeError, OSError):
            return None

    async def close(self) -> None:
        # What was queued (a last /quit) goes out first, if it can within a moment.
        if not self._sender.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), CLOSE_WAIT)
        self._sender.cancel()
        with contextlib.suppress(Exception):
            await self.conn.close()


async def connect(target: Target, name: str | None = None) -> Link:
    """Open a link; CS168 sends its name at once (its first frame)."""
    if target.scheme in ("ws", "wss"):
        try:
            conn = await asyncio.wait_for(
                ws_connect(target.url, max_size=1 << 20, compression=None), CONNECT_TIMEOUT
            )
        except WebSocketException as err:
            raise OSError(str(err)) from err
        link: Link = WsLink(conn)
        if name:
            link.send(f"/nick {name}")
        return link
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(target.host, target.port, limit=1 << 20), CONNECT_TIMEOUT
    )
    if target.scheme == "cs168":
        link = Cs168Link(reader, writer)
        link.send(name or "guest")
    else:
        link = LineLink(reader, writer)
        if name:
            link.send(f"/nick {name}")
    return link
