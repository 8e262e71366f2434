"""The http door: the web pages, and WebSockets at ``/chat``, ``/echo`` and ``/ws``.

One connection carries one HTTP request. Its head is cut from the stream here
(bounded by ``MAX_REQUEST_HEAD``) and read by the ``websockets`` library's
sans-I/O ``ServerProtocol``, which also does the WebSocket handshake, frame
parsing, pings, pongs and the closing handshake. What the connection then
speaks depends on the path:

* a page (``/``, ``/ui-chat``, ``/ui-echo``, the files beside them): one
  response from ``Site``, then the connection closes;
* ``/chat``: the line protocol (proto/line.py) in text frames, one line per
  frame both ways, so ``python -m websockets ws://HOST:8080/chat`` is a client;
* ``/echo``: every frame comes back as it was sent (seed 000);
* ``/ws``: the web client's JSON protocol (proto/webjson.py).

No extension is offered (no permessage-deflate), so a server frame's bytes
depend only on its payload: a room message is framed once per variant and the
same bytes go to every member (see ``Door.render``). Server frames are built
with ``websockets.frames.Frame`` unmasked; control frames (ping, pong, close)
go through the connection's ``ServerProtocol``, which keeps the closing
handshake's state.

Totality: ``receive_data`` takes any bytes. Garbage instead of HTTP is a 400,
a head too large a 431, a method other than GET or HEAD a 405, a path
outside the site a 404, and each then closes. On a WebSocket: invalid UTF-8
in a text frame closes with 1007, a message over ``MAX_FRAME`` with 1009,
broken framing with 1002; a binary frame on ``/chat`` or ``/ws`` and a text
frame over ``MAX_TEXT_FRAME`` get an error and the connection goes on.

Reads the clock only for the ``Date`` header of responses (as the library's
handshake does).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import ClassVar

from websockets.datastructures import Headers
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from salas.core import commands as c
from salas.core.events import Closing, Event, Message
from salas.proto.door import INTRODUCED, Input
from salas.proto.line import LineDoor
from salas.proto.webjson import CallSettings, WebJson

#: The library logs every handshake at INFO: only its warnings and errors reach ours.
_WS_LOG = logging.getLogger("salas.websocket")
_WS_LOG.setLevel(logging.WARNING)

#: Bytes of request line and headers. A browser's request is about 0.5-2 KiB;
#: nginx reads 1 KiB and then up to 4 x 8 KiB, Apache 8 KiB a line. 16 KiB is
#: plenty for any honest client and bounds what a slow one can make us hold.
MAX_REQUEST_HEAD = 16 * 1024
#: The largest WebSocket message read (all its fragments together). A message
#: is held whole before it is read, so this bounds memory per connection; past
#: it the connection is closed with 1009 (message too big).
MAX_FRAME = 64 * 1024
#: The largest text message ``/chat`` and ``/ws`` read: a line is at most 4 KiB
#: (proto/line.py) and a JSON request at most 16 KiB (proto/webjson.py). A
#: longer one gets an error, is dropped, and the connection goes on.
MAX_TEXT_FRAME = 16 * 1024
#: RFC 6455 5.5: a control frame's payload is at most 125 bytes, 2 of them the code.
CLOSE_REASON_MAX = 123

FRAME_TOO_LONG = f"! Frame too long (over {MAX_TEXT_FRAME} bytes), so it was not sent".encode()

CHAT_PATH = "/chat"
ECHO_PATH = "/echo"
JSON_PATH = "/ws"
#: What /chat and /ws users are called in ``/who`` and the logs.
CHAT_DOOR = "ws"

HTTP_VARIANT = ("http",)
CHAT_VARIANT = ("http", "chat")
JSON_VARIANT = ("http", "json")

#: No inline script or style, nothing from elsewhere, never inside a frame.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none';"
    " form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "json": "application/json",
    "webmanifest": "application/manifest+json",
    "txt": "text/plain; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "ico": "image/x-icon",
    "woff2": "font/woff2",
}

# Modes: waiting for the request head; a WebSocket of one kind; nothing more to say.
REQUEST, CHAT, ECHO, JSON, DONE = "request", "chat", "echo", "json", "done"

#: A path the site may have: segments of letters, digits and ``. _ ~ -`` that
#: don't start with a dot. No ``%`` (nothing is decoded), no ``\\``, no NUL,
#: no ``//``, no ``.`` or ``..``: nothing that could name a file elsewhere.
_SAFE_PATH = re.compile(r"/(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*/)*(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*)?")
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
#: The blank line that ends a request head, and each line's end (CRLF or a bare LF).
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")
_REQUEST_LINE = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+ [^ \r\n]+ HTTP/1\.[01]\r\n")
#: What a browser tab opening a WebSocket path reads.
UPGRADE_BODY = b"426 Upgrade Required: this address is for WebSocket clients\n"
#: Longest path looked up; longer ones are simply not there.
MAX_PATH = 1024
#: Longest method read: the standard ones have at most 7 letters (OPTIONS, CONNECT).
MAX_METHOD = 16


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(name.rpartition(".")[2].lower(), "application/octet-stream")


def safe_path(path: str) -> bool:
    return len(path) <= MAX_PATH and _SAFE_PATH.fullmatch(path) is not None


@dataclass(frozen=True, slots=True)
class Page:
    body: bytes
    content_type: str


class Site:
    """The web files (``salas/web``), in memory, by URL path: ``NAME`` is at
    ``/NAME``, ``NAME.html`` also at ``/NAME``, and ``index.html`` at ``/``.
    Nothing is read from disk while serving, so no path can reach past them."""

    def __init__(self, files: Mapping[str, bytes] | None = None) -> None:
        self.pages: dict[str, Page] = {}
        for name, body in (files or {}).items():
            path = "/" + name
            if not safe_path(path):
                continue
            page = Page(body, content_type(name))
            self.pages[path] = page
            if name.endswith(".html"):
                stem = path[: -len(".html")]
                self.pages.setdefault(stem, page)
                if stem.endswith("/index"):
                    self.pages.setdefault(stem[: -len("index")], page)

    def lookup(self, path: str) -> Page | None:
        if not safe_path(path):
            return None
        return self.pages.get(path)


def http_response(
    status: int,
    body: bytes = b"",
    ctype: str = "text/plain; charset=utf-8",
    *,
    head_only: bool = False,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A whole response, with the security headers; the connection closes after it."""
    if not body and status >= 400:
        body = f"{status} {HTTPStatus(status).phrase}\n".encode()
    headers = Headers()
    headers["Date"] = formatdate(usegmt=True)
    headers["Connection"] = "close"
    headers["Content-Type"] = ctype
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-cache"
    for name, value in (*SECURITY_HEADERS, *extra):
        headers[name] = value
    phrase = HTTPStatus(status).phrase
    return Response(status, phrase, headers, b"" if head_only else body).serialize()


def text_frame(payload: bytes) -> bytes:
    """An unmasked server text frame: the same bytes for every connection."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


def line_frames(data: bytes) -> bytes:
    """The line door's output, one text frame per line (without its ``\\n``)."""
    if not data:
        return b""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join(text_frame(line) for line in lines)


def _framed(item: Input) -> Input:
    """A line door input for a WebSocket: its replies (now, or made when their turn
    comes) as text frames; commands as they are."""
    if isinstance(item, bytes):
        return line_frames(item)
    if callable(item):
        later = item
        return lambda: line_frames(later())
    return item


def _clip(reason: str, limit: int = CLOSE_REASON_MAX) -> str:
    return reason.encode()[:limit].decode(errors="ignore")


def _close_code(reason: str) -> int:
    if reason == "Internal server error":
        return CloseCode.INTERNAL_ERROR
    if "shutting down" in reason:
        return CloseCode.GOING_AWAY
    return CloseCode.POLICY_VIOLATION


_CLOSING_CODES = {
    "quit": CloseCode.NORMAL_CLOSURE,
    "shutdown": CloseCode.GOING_AWAY,
    "kill": CloseCode.POLICY_VIOLATION,
    "error": CloseCode.INTERNAL_ERROR,
}


class HttpDoor:
    door: ClassVar[str] = "http"

    __slots__ = (
        "_frag",
        "_frag_text",
        "_head",
        "_json",
        "_line",
        "_mode",
        "_ping_out",
        "_proto",
        "_reason",
        "_ws",
        "calls",
        "host",
        "ping_interval",
        "ping_timeout",
        "port",
        "sid",
        "site",
        "tick_interval",
        "variant",
    )

    def __init__(
        self,
        sid: int,
        host: str,
        port: int,
        site: Site | None = None,
        ping_interval: float = 30.0,
        ping_timeout: float = 30.0,
        calls: CallSettings | None = None,
    ) -> None:
        self.sid = sid
        #: What the JSON protocol's welcome says about calls ([direct]).
        self.calls = calls
        self.host = host
        self.port = port
        self.site = site if site is not None else Site()
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.tick_interval: float | None = min(ping_interval, ping_timeout) / 2
        self.variant: object = HTTP_VARIANT
        self._mode = REQUEST
        #: What the WebSocket speaks (kept once the connection is done).
        self._proto = ""
        self._head = b""
        #: Made once the request head is complete: a slow client costs only its bytes.
        self._ws: ServerProtocol | None = None
        self._line: LineDoor | None = None
        self._json: WebJson | None = None
        #: A fragmented message being put together.
        self._frag: list[bytes] | None = None
        self._frag_text = False
        self._ping_out = False
        #: Why we failed the WebSocket, when we did.
        self._reason = ""

    # -- the door protocol ---------------------------------------------------------

    def start(self) -> list[Input]:
        return []  # the request must come within limits.register_timeout

    def receive_data(self, data: bytes) -> list[Input]:
        if self._mode == REQUEST:
            return self._request(data)
        ws = self._ws
        if ws is None or self._mode == DONE:
            return []
        self._ping_out = False  # anything at all shows the peer is alive
        ws.receive_data(data)
        return self._events(ws)

    def shared_key(self, event: Event) -> object | None:
        mode = self._mode
        if mode == CHAT:
            assert self._line is not None
            return CHAT_VARIANT if self._line.shared_key(event) is not None else None
        if mode == JSON:
            assert self._json is not None
            return JSON_VARIANT if self._json.shared_key(event) is not None else None
        return None  # done: rendered alone (to nothing), never for others

    def render(self, event: Event) -> bytes:
        if type(event) is Message:
            # Shared by every member with this variant: the same whatever our state.
            if self._proto == CHAT:
                assert self._line is not None
                return line_frames(self._line.render(event))
            if self._proto == JSON:
                assert self._json is not None
                return self._json.render(event)
            return b""
        mode = self._mode
        if mode == CHAT:
            assert self._line is not None
            data = line_frames(self._line.render(event))
            if isinstance(event, Closing):
                data += self._close(_CLOSING_CODES[event.kind], event.reason)
            return data
        if mode == JSON:
            assert self._json is not None
            data = self._json.render(event)
            if isinstance(event, Closing):
                data += self._close(_CLOSING_CODES[event.kind], event.reason)
            return data
        if mode == ECHO and isinstance(event, Closing):
            return self._close(_CLOSING_CODES[event.kind], event.reason)
        return b""

    def render_error_close(self, reason: str) -> bytes:
        mode = self._mode
        if mode == REQUEST:
            self._mode = DONE
            return http_response(408 if "timed out" in reason else 503)
        code = _close_code(reason)
        if mode == CHAT:
            assert self._line is not None
            return line_frames(self._line.render_error_close(reason)) + self._close(code, reason)
        if mode == JSON:
            assert self._json is not None
            return self._json.closing(reason, "kill") + self._close(code, reason)
        if mode == ECHO:
            return self._close(code, reason)
        return b""

    def render_flood_notice(self) -> bytes:
        if self._mode == CHAT:
            assert self._line is not None
            return line_frames(self._line.render_flood_notice())
        if self._mode == JSON:
            assert self._json is not None
            return self._json.flood_notice()
        return b""

    def tick(self, idle: float) -> list[Input]:
        """Keep-alive: a ping after ``ping_interval`` of silence, and the
        connection is dropped when ``ping_timeout`` more pass without a word."""
        ws = self._ws
        if self._mode not in (CHAT, JSON, ECHO) or ws is None or ws.state is not State.OPEN:
            return []
        if self._ping_out:
            if idle >= self.ping_interval + self.ping_timeout:
                return [c.Quit(f"Ping timeout: {int(idle)} seconds")]
            return []
        if idle >= self.ping_interval:
            self._ping_out = True
            ws.send_ping(b"salas")
            return [b"".join(ws.data_to_send())]
        return []

    # -- the request ----------------------------------------------------------------

    def _request(self, data: bytes) -> list[Input]:
        head = self._head + data if self._head else data
        # Garbage (TLS, another protocol, noise) is refused at once, not when it times out.
        space = head.find(b" ", 0, MAX_METHOD + 1)
        method = head[:space] if space >= 0 else head[: MAX_METHOD + 1]
        if (method and not _TOKEN.fullmatch(method)) or (space < 0 and len(method) > MAX_METHOD):
            return self._respond(400)
        blank = _HEAD_END.search(head)
        if blank is None:
            if len(head) > MAX_REQUEST_HEAD:
                return self._respond(431)
            self._head = head
            return []
        self._head = b""
        end = blank.end()
        if end > MAX_REQUEST_HEAD:
            return self._respond(431)
        # Lines may end in a bare LF (RFC 9112 allows it): what someone types
        # into netcat. The parser below wants CRLF.
        rest, head = head[end:], _LINE_END.sub(b"\r\n", head[:end])
        if not _REQUEST_LINE.match(head):
            return self._respond(400)
        if method not in (b"GET", b"HEAD"):
            return self._respond(405, extra=(("Allow", "GET, HEAD"),))
        ws = ServerProtocol(max_size=MAX_FRAME, logger=_WS_LOG)
        # Older releases of the library read only GET requests: HEAD is read as one.
        ws.receive_data(b"GET" + head[4:] if method == b"HEAD" else head)
        events = ws.events_received()
        request = events[0] if events else None
        if not isinstance(request, Request):
            return self._respond(400)
        path = request.path.partition("?")[0]
        if path in (CHAT_PATH, ECHO_PATH, JSON_PATH) and method == b"GET":
            return self._upgrade(ws, request, path, rest)
        page = self.site.lookup(path)
        if page is None:
            return self._respond(404)
        self._mode = DONE
        head_only = method == b"HEAD"
        return [http_response(200, page.body, page.content_type, head_only=head_only), c.Quit()]

    def _respond(
        self, status: int, body: bytes = b"", extra: tuple[tuple[str, str], ...] = ()
    ) -> list[Input]:
        self._mode = DONE
        self._head = b""
        return [http_response(status, body, extra=extra), c.Quit()]

    def _upgrade(self, ws: ServerProtocol, request: Request, path: str, rest: bytes) -> list[Input]:
        response = ws.accept(request)
        if response.status_code != 101:
            # Not a WebSocket handshake (a browser opening /chat, say): 426 or
            # 400, answered like every other response (security headers, and
            # nothing of the request repeated back).
            status = response.status_code
            if status == 426:
                return self._respond(426, UPGRADE_BODY, (("Upgrade", "websocket"),))
            return self._respond(status)
        ws.send_response(response)
        self._ws = ws
        out: list[Input] = [b"".join(ws.data_to_send())]
        if path == CHAT_PATH:
            self._mode = self._proto = CHAT
            self.variant = CHAT_VARIANT
            self._line = LineDoor(self.sid, self.host, self.port)
            out.append(c.Register(None, CHAT_DOOR, self.host, self.port, lobby=True))
        elif path == JSON_PATH:
            self._mode = self._proto = JSON
            self.variant = JSON_VARIANT
            self._json = WebJson(self.sid, self.host, self.port, text_frame, self.calls)
        else:
            self._mode = self._proto = ECHO
            out.append(INTRODUCED)
        if rest:
            ws.receive_data(rest)
            out.extend(self._events(ws))
        return out

    # -- frames -----------------------------------------------------------------------

    def _events(self, ws: ServerProtocol) -> list[Input]:
        out: list[Input] = []
        for event in ws.events_received():
            if not isinstance(event, Frame):
                continue
            got = self._frame(ws, event)
            # Every frame costs a flood token, even one that asks for nothing.
            out.extend(got if got else (b"",))
            if self._reason:
                break  # we failed the connection: nothing after that is read
        out.extend(self._writes(ws))
        return out

    def _frame(self, ws: ServerProtocol, frame: Frame) -> list[Input]:
        op = frame.opcode
        if op is Opcode.TEXT or op is Opcode.BINARY:
            if not frame.fin:
                self._frag = [bytes(frame.data)]
                self._frag_text = op is Opcode.TEXT
                return []
            return self._message(ws, op is Opcode.TEXT, bytes(frame.data))
        if op is Opcode.CONT:
            parts = self._frag
            if parts is None:  # the library fails the connection for this already
                return []
            parts.append(bytes(frame.data))
            if not frame.fin:
                return []
            self._frag = None
            return self._message(ws, self._frag_text, b"".join(parts))
        return []  # ping, pong and close: the library answers them itself

    def _message(self, ws: ServerProtocol, text: bool, data: bytes) -> list[Input]:
        if text:
            try:
                data.decode()
            except UnicodeDecodeError:
                self._reason = "Invalid UTF-8 in a text frame"
                ws.fail(CloseCode.INVALID_DATA, self._reason)
                return []
        mode = self._mode
        if mode == ECHO:
            return [Frame(Opcode.TEXT if text else Opcode.BINARY, data).serialize(mask=False)]
        if mode == CHAT:
            if not text:
                return [text_frame(b"! Binary frames are not read here: send text")]
            if len(data) > MAX_TEXT_FRAME:
                return [text_frame(FRAME_TOO_LONG)]
            assert self._line is not None
            items = self._line.receive_data(data + b"\n")
            return [_framed(x) for x in items]
        if mode == JSON:
            assert self._json is not None
            if not text:
                return [self._json.error("binary", "Binary frames are not read here: send JSON")]
            return self._json.receive(data)
        return []

    def _writes(self, ws: ServerProtocol) -> list[Input]:
        """What the library has to send (pongs, the closing handshake); when it
        is done with the connection, a ``Quit`` closes ours once that is written."""
        chunks = ws.data_to_send()
        if not chunks:
            return []
        data = b"".join(chunks)
        out: list[Input] = [data] if data else []
        if b"" in chunks:  # the library's end of stream: close the TCP connection
            self._mode = DONE
            out.append(c.Quit(self._quit_reason(ws)))
        return out

    def _quit_reason(self, ws: ServerProtocol) -> str:
        if self._reason:
            return self._reason
        if ws.parser_exc is not None:
            return _clip(f"WebSocket error: {ws.parser_exc}", 200)
        return "Connection closed"

    def _close(self, code: int, reason: str) -> bytes:
        """Start the closing handshake (once); the server closes the socket after it."""
        self._mode = DONE
        ws = self._ws
        if ws is None or ws.state is not State.OPEN:
            return b""
        ws.send_close(code, _clip(reason))
        return b"".join(ws.data_to_send())
